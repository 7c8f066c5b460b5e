/* A small, position-carrying tree built from a libyaml document.  Every node
 * remembers where it came from (job file line:col, or the --set that made it)
 * so that every job error can point at the user's text. */
#ifndef HB_YAML_H
#define HB_YAML_H

#include <stddef.h>

typedef enum { HB_NODE_SCALAR, HB_NODE_MAP, HB_NODE_SEQ } hb_node_kind;

typedef struct hb_node hb_node;
struct hb_node {
  hb_node_kind kind;
  const char *src;  /* job file path, or "--set KEY=VALUE"; not owned */
  int line, col;    /* 1-based position of the value */
  char *key;        /* set when the node is a map member */
  int key_line, key_col;
  char *text;       /* scalar text */
  int plain;        /* scalar was unquoted (so `off` may be a boolean) */
  hb_node **kids;   /* map members or sequence items, in document order */
  size_t n;
  /* a map's typed parameters (hb_params_bind), made once, freed with the node */
  struct hb_params *params;
};

/* Bounds against hostile input ("billion laughs" and the like).  Nodes and
 * expanded bytes (the text of every scalar and key) are counted with every
 * alias expanded: the tree holds a copy per alias.  A real job is a few KB. */
#define HB_YAML_MAX_BYTES (256 * 1024)
#define HB_YAML_MAX_NODES 100000
#define HB_YAML_MAX_EXPANDED (32 * 1024 * 1024)
#define HB_YAML_MAX_DEPTH 64

/* Parse one YAML document; errors are HB_EINVALID at "src:line:col". */
int hb_yaml_parse(const char *src, const char *text, size_t len, hb_node **out);
void hb_node_free(hb_node *n);
hb_node *hb_node_child(const hb_node *map, const char *key);
/* "src:line:col" of a node (of its key when a map member, if use_key). */
const char *hb_node_where(const hb_node *n, int use_key);

/* Typed readers.  Each raises HB_EINVALID at the node with a clear message. */
int hb_node_string(const hb_node *n, const char **out);
int hb_node_int(const hb_node *n, long long *out);
int hb_node_double(const hb_node *n, double *out);
int hb_node_bool(const hb_node *n, int *out);
/* A flow sequence of exactly `count` numbers, e.g. [64, 64]. */
int hb_node_numbers(const hb_node *n, double *out, size_t count);
int hb_node_is_bool(const hb_node *n); /* a plain YAML 1.1 boolean scalar */
/* A plain (unquoted) YAML null: ~, null, Null, NULL or nothing at all.  A
 * quoted "~" or "null" is a string. */
int hb_node_is_null(const hb_node *n);

/* --set: replace (or add) the value at a dotted path, e.g. "output.file" or
 * "kernels.bf.detector.radius" (a sequence item is picked by index or by its
 * `name`).  `label` is "--set KEY=VALUE"; it must outlive the tree, and names
 * the new nodes in errors.  VALUE is parsed as YAML. */
int hb_node_set_path(hb_node *root, const char *label);

/* Levenshtein distance, for "did you mean" hints. */
size_t hb_edit_distance(const char *a, const char *b);

#endif
