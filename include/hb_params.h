/* Parameter schemas and typed parameters.
 *
 * A schema is a table of hb_param_spec rows, one per key: its type, whether
 * it is required, its typed default (written once: `hyperbatch kernels` and
 * docs/kernels.md print it from the row) and its help.  A map of the job is
 * checked against its table once (hb_params_check, at load time) and bound
 * to it (hb_params_bind): every value read with its type and its position,
 * every path resolved by the one rule (hb_path_resolve), every absent key
 * given its default.  Kernels, preprocess steps and job.c read parameters
 * only through the accessors below; the YAML stays in job/. */
#ifndef HB_PARAMS_H
#define HB_PARAMS_H

#include <stddef.h>

#include "hb_yaml.h"

typedef enum {
  HB_P_INT,     /* with `choices` ("auto"), one of those words is allowed instead of a number */
  HB_P_FLOAT,
  HB_P_BOOL,
  HB_P_STRING,
  HB_P_ENUM,    /* one of `choices`, "a|b|c" */
  HB_P_NUMBERS, /* flow list of `count` numbers; count 0: 1 to HB_PARAM_MAX_NUMBERS of them */
  HB_P_MAP,     /* nested map checked against `sub` (free keys without `sub`) */
  HB_P_MAP_OR_PATH, /* a map as HB_P_MAP, or a string naming a file or FILE:/DATASET (FILE as HB_P_PATH) */
  HB_P_LIST,    /* a list; with `sub`, a list of maps each checked against `sub`; else checked by the owner */
  HB_P_PATH,    /* a file path, resolved by hb_path_resolve (docs/job-format.md, "Paths") */
  HB_P_NAMES,   /* a name, or a flow list of 1 to HB_PARAM_MAX_NUMBERS names (HyperSpy's axis= tuple) */
} hb_ptype;

#define HB_PARAM_MAX_NUMBERS 16

/* A typed value: the field of the row's type. */
typedef struct {
  long long i;   /* HB_P_INT */
  double f;      /* HB_P_FLOAT */
  int b;         /* HB_P_BOOL */
  const char *s; /* HB_P_STRING, HB_P_ENUM; HB_P_INT with `choices`: the word */
} hb_pvalue;

typedef struct hb_param_spec hb_param_spec;
struct hb_param_spec {
  const char *name;
  hb_ptype type;
  int required;
  int has_dflt;           /* a default exists: `dflt` */
  hb_pvalue dflt;         /* the default, typed (printed by `hyperbatch kernels`) */
  const char *dflt_note;  /* printed after the default, for a default that depends on the data */
  const char *choices;    /* HB_P_ENUM; HB_P_INT: words allowed instead of a number */
  int count;              /* HB_P_NUMBERS */
  const hb_param_spec *sub; /* HB_P_MAP, HB_P_MAP_OR_PATH, HB_P_LIST of maps */
  const char *help;
};
#define HB_PARAM_END {0}

/* Row helpers, after the name and the type:
 *   {"max_iter", HB_P_INT, HB_DEFAULT_INT(200), .help = "..."}
 *   {"components", HB_P_INT, HB_REQUIRED, .help = "..."} */
#define HB_REQUIRED .required = 1
#define HB_DEFAULT_INT(v) .has_dflt = 1, .dflt = {.i = (v)}
#define HB_DEFAULT_FLOAT(v) .has_dflt = 1, .dflt = {.f = (v)}
#define HB_DEFAULT_BOOL(v) .has_dflt = 1, .dflt = {.b = (v)}
#define HB_DEFAULT_STR(v) .has_dflt = 1, .dflt = {.s = (v)}  /* HB_P_STRING, HB_P_ENUM, an HB_P_INT word */
/* A number as text, for a note built from the constant the code uses. */
#define HB_STR_(x) #x
#define HB_STR(x) HB_STR_(x)

/* Check `map` against `spec`: every key known (with a "did you mean" hint),
 * every type right (a bare YAML null is no string or path), every required
 * key present.  `what` names the map in messages ("kernel 'bf'").  Keys
 * listed in `extra` ("name|op") are allowed and not checked.  On success the
 * map is also bound (below), so the values are read once. */
int hb_params_check(const hb_node *map, const hb_param_spec *spec, const char *what, const char *extra);
/* The type as `hyperbatch kernels` prints it. */
const char *hb_ptype_name(const hb_param_spec *p);
/* The row's default as text ("200", "1e-4", "false", "auto"), or NULL. */
const char *hb_param_default_text(const hb_param_spec *p, char *buf, size_t cap);

/* ---- typed parameters ---------------------------------------------------- */

typedef struct hb_params hb_params;

/* The typed parameters of `map` (a map node of the job) under `spec`.  The
 * binding is made once and kept with the node: it lives as long as the
 * job's tree (hb_node_free frees it), and binding the same node again
 * returns the same object; a node bound to another table is HB_EINTERNAL.  Keys outside `spec` (a kernel's name and
 * op) are skipped; the job checked them already (hb_params_check).  Type
 * errors are HB_EINVALID at the value. */
int hb_params_bind(const hb_node *map, const hb_param_spec *spec, const hb_params **out);

/* Accessors.  `name` must be a row of the table and the accessor of its
 * type: anything else is a programming error, recorded as HB_EINTERNAL
 * (hb_params_misused then returns it) while the accessor returns 0/NULL.
 * An absent key without a default reads as 0, false, NULL. */
long long hb_param_int(const hb_params *p, const char *name);      /* HB_P_INT (not a word: see hb_param_word) */
double hb_param_float(const hb_params *p, const char *name);       /* HB_P_FLOAT */
int hb_param_bool(const hb_params *p, const char *name);           /* HB_P_BOOL */
/* HB_P_STRING, HB_P_ENUM; HB_P_PATH: the resolved path; HB_P_MAP_OR_PATH
 * given as a string: its FILE, resolved (NULL when it is a map). */
const char *hb_param_str(const hb_params *p, const char *name);
/* HB_P_INT with words: the word given (or defaulted), NULL for a number. */
const char *hb_param_word(const hb_params *p, const char *name);
/* HB_P_MAP_OR_PATH given as FILE:/DATASET: "/DATASET", else NULL. */
const char *hb_param_dataset(const hb_params *p, const char *name);
/* HB_P_NUMBERS: copies the values into out (room for the row's count, or
 * HB_PARAM_MAX_NUMBERS) and returns how many; 0 when absent. */
int hb_param_numbers(const hb_params *p, const char *name, double *out);
/* HB_P_NAMES: points out[0..] (room for HB_PARAM_MAX_NUMBERS) at the names
 * and returns how many (1 for a single name or a default); 0 when absent. */
int hb_param_names(const hb_params *p, const char *name, const char **out);
/* HB_P_NAMES: "job.yaml:LINE:COL" of name i (of the value for a single name). */
const char *hb_param_where_item(const hb_params *p, const char *name, int i);
/* HB_P_MAP(_OR_PATH) with `sub`: the nested parameters (every default when
 * the map is absent); NULL for the string form of HB_P_MAP_OR_PATH. */
const hb_params *hb_param_map(const hb_params *p, const char *name);
/* HB_P_LIST with `sub`: the number of items (0 when absent) and item i. */
size_t hb_param_count(const hb_params *p, const char *name);
const hb_params *hb_param_item(const hb_params *p, const char *name, size_t i);
/* HB_P_LIST without `sub`, HB_P_MAP without `sub` (free keys): the node
 * itself, NULL when absent.  Their owner reads them (job.c, the engine). */
const hb_node *hb_param_node(const hb_params *p, const char *name);

/* Any row: present in the job (not defaulted). */
int hb_param_given(const hb_params *p, const char *name);
/* "job.yaml:LINE:COL" of the value (or "--set KEY=VALUE"); for a defaulted
 * key, the position of the enclosing map.  _key: of the key instead.  Like
 * hb_node_where's, the text lasts for four more such calls: copy it to keep it. */
const char *hb_param_where(const hb_params *p, const char *name);
const char *hb_param_where_key(const hb_params *p, const char *name);
/* The position of the map itself (of its key when it has one). */
const char *hb_params_where(const hb_params *p);
/* The scalar text as written (a path before resolution; of an
 * HB_P_MAP_OR_PATH string, its FILE part), NULL if defaulted or not a scalar. */
const char *hb_param_text(const hb_params *p, const char *name);

/* HB_EINTERNAL if an accessor was misused on p (or a map nested in it), else
 * 0.  A plan ends with it, so that a wrong name fails the plan. */
int hb_params_misused(const hb_params *p);
/* For hb_node_free. */
void hb_params_free(hb_params *p);

#endif
