/* libyaml document -> hb_node tree, with positions; the one place libyaml is
 * called, so its failures are wrapped here once. */
#include "hb_yaml.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "hb_error.h"
#include "hb_params.h"

const char *hb_node_where(const hb_node *n, int use_key) {
  static char ring[4][1200];
  static int next;
  char *buf = ring[next++ & 3];
  if (!n) return "job";
  if (!strncmp(n->src, "--set", 5)) {
    snprintf(buf, sizeof ring[0], "%s", n->src);
  } else if (use_key && n->key) {
    snprintf(buf, sizeof ring[0], "%s:%d:%d", n->src, n->key_line, n->key_col);
  } else {
    snprintf(buf, sizeof ring[0], "%s:%d:%d", n->src, n->line, n->col);
  }
  return buf;
}

void hb_node_free(hb_node *n) {
  if (!n) return;
  for (size_t i = 0; i < n->n; i++) hb_node_free(n->kids[i]);
  hb_params_free(n->params);
  free(n->kids);
  free(n->key);
  free(n->text);
  free(n);
}

/* One wording for the expanded-size limit, from the prescan and the builder. */
static int expanded_error(const char *where) {
  return HB_FAIL(HB_EINVALID, where,
                 "aliases expand the job to more than %d MiB of text (the limit; a real job is a few KB)",
                 HB_YAML_MAX_EXPANDED >> 20);
}

typedef struct {
  yaml_document_t *doc;
  const char *src;
  size_t budget; /* nodes left: aliases are expanded, so bound the total */
  size_t bytes;  /* scalar and key text left, for the same reason */
} builder;

/* Take n bytes of text from the budget.  The prescan has refused any
 * document over it already; this is the backstop the copies rely on. */
static int spend(builder *b, size_t n, const hb_node *at) {
  if (n > b->bytes) return expanded_error(hb_node_where(at, 0));
  b->bytes -= n;
  return 0;
}

static int build(builder *b, yaml_node_t *yn, int depth, hb_node **out) {
  HB_CHECK(depth <= HB_YAML_MAX_DEPTH, HB_EINVALID, b->src, "nesting deeper than %d levels", HB_YAML_MAX_DEPTH);
  if (b->budget == 0)
    HB_RAISE(HB_EINVALID, b->src, "more than %d YAML nodes (are anchors/aliases expanding?)", HB_YAML_MAX_NODES);
  b->budget--;
  hb_node *n;
  HB_ALLOC(n, 1);
  *out = n;
  n->src = b->src;
  n->line = (int)yn->start_mark.line + 1;
  n->col = (int)yn->start_mark.column + 1;
  switch (yn->type) {
    case YAML_SCALAR_NODE:
      n->kind = HB_NODE_SCALAR;
      HB_CALL(spend(b, yn->data.scalar.length, n));
      n->text = strndup((const char *)yn->data.scalar.value, yn->data.scalar.length);
      n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
      HB_CHECK(n->text, HB_EINTERNAL, "memory", "out of memory");
      return 0;
    case YAML_SEQUENCE_NODE: {
      n->kind = HB_NODE_SEQ;
      size_t cnt = (size_t)(yn->data.sequence.items.top - yn->data.sequence.items.start);
      HB_ALLOC(n->kids, cnt);
      for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *c = yaml_document_get_node(b->doc, yn->data.sequence.items.start[i]);
        int rc = build(b, c, depth + 1, &n->kids[n->n]);
        if (n->kids[n->n]) n->n++; /* a half-built child is freed with its parent */
        if (rc) return hb_error_trace(rc, __FILE__, __LINE__);
      }
      return 0;
    }
    case YAML_MAPPING_NODE: {
      n->kind = HB_NODE_MAP;
      size_t cnt = (size_t)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);
      HB_ALLOC(n->kids, cnt);
      for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *p = &yn->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(b->doc, p->key);
        char where[1200];
        snprintf(where, sizeof where, "%s:%zu:%zu", b->src, k->start_mark.line + 1, k->start_mark.column + 1);
        HB_CHECK(k->type == YAML_SCALAR_NODE, HB_EINVALID, where, "a key must be a plain word");
        const char *key = (const char *)k->data.scalar.value;
        if (k->data.scalar.length > b->bytes) return expanded_error(where);
        b->bytes -= k->data.scalar.length;
        for (size_t j = 0; j < n->n; j++)
          HB_CHECK(strcmp(n->kids[j]->key, key), HB_EINVALID, where, "duplicate key '%s' (first at line %d)",
                   key, n->kids[j]->key_line);
        hb_node *c = NULL;
        int rc = build(b, yaml_document_get_node(b->doc, p->value), depth + 1, &c);
        if (c) n->kids[n->n++] = c; /* a half-built child is freed with its parent */
        if (rc) return hb_error_trace(rc, __FILE__, __LINE__);
        c->key = strdup(key);
        HB_CHECK(c->key, HB_EINTERNAL, "memory", "out of memory");
        c->key_line = (int)k->start_mark.line + 1;
        c->key_col = (int)k->start_mark.column + 1;
      }
      return 0;
    }
    default:
      HB_RAISE(HB_EINVALID, hb_node_where(n, 0), "empty YAML node");
  }
}

static int syntax_error(const char *src, const yaml_parser_t *parser) {
  char where[1200];
  snprintf(where, sizeof where, "%s:%zu:%zu", src, parser->problem_mark.line + 1, parser->problem_mark.column + 1);
  return HB_FAIL(HB_EINVALID, where, "YAML syntax error: %s%s%s", parser->problem ? parser->problem : "unknown",
                 parser->context ? " " : "", parser->context ? parser->context : "");
}

/* Anchors by name, with what an alias to each adds once expanded. */
typedef struct {
  char *name;
  size_t bytes, nodes;
  int open; /* still being read: an alias to it would make a cycle */
} anchor;

typedef struct {
  const char *src;
  anchor *slot; /* open addressing; cap a power of two, at most half full */
  size_t cap, used;
  struct {
    int map;             /* a mapping: its even-numbered children are keys */
    size_t kids;
    size_t bytes, nodes; /* totals where it started */
    const char *anchor;  /* its anchor's name (owned by slot), or NULL */
  } stack[HB_YAML_MAX_DEPTH + 1];
  int depth;
  size_t events, nodes, bytes; /* nodes and text so far, aliases expanded */
} scan;

static anchor *anchor_slot(const scan *s, const char *name) {
  size_t h = 14695981039346656037u;
  for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211u;
  for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1))
    if (!s->slot[i].name || !strcmp(s->slot[i].name, name)) return &s->slot[i];
}

/* (Re)define an anchor; libyaml's loader refuses a duplicate later. */
static int anchor_define(scan *s, const char *name, size_t bytes, size_t nodes, int open, const char **owned) {
  if (2 * (s->used + 1) > s->cap) {
    scan grown = *s;
    grown.cap = s->cap ? 2 * s->cap : 64;
    grown.slot = calloc(grown.cap, sizeof *grown.slot);
    HB_CHECK(grown.slot, HB_EINTERNAL, "memory", "out of memory");
    for (size_t i = 0; i < s->cap; i++)
      if (s->slot[i].name) *anchor_slot(&grown, s->slot[i].name) = s->slot[i];
    free(s->slot);
    s->slot = grown.slot;
    s->cap = grown.cap;
  }
  anchor *a = anchor_slot(s, name);
  if (!a->name) {
    a->name = strdup(name);
    HB_CHECK(a->name, HB_EINTERNAL, "memory", "out of memory");
    s->used++;
  }
  a->bytes = bytes, a->nodes = nodes, a->open = open;
  if (owned) *owned = a->name;
  return 0;
}

/* Count one event: nodes and text as the builder will make them, each alias
 * as a copy of its anchor, so an alias bomb is refused at the alias that
 * crosses a limit, before anything is expanded. */
static int scan_event(scan *s, const yaml_event_t *ev) {
  char where[1200];
  snprintf(where, sizeof where, "%s:%zu:%zu", s->src, ev->start_mark.line + 1, ev->start_mark.column + 1);
  int top = s->depth - 1;
  int key = top >= 0 && s->stack[top].map && s->stack[top].kids % 2 == 0; /* a key is no node of its own */
  const yaml_char_t *name;
  switch (ev->type) {
    case YAML_SCALAR_EVENT:
      s->bytes += ev->data.scalar.length;
      s->nodes += !key;
      name = ev->data.scalar.anchor;
      if (name) HB_CALL(anchor_define(s, (const char *)name, ev->data.scalar.length, 1, 0, NULL));
      break;
    case YAML_ALIAS_EVENT: {
      name = ev->data.alias.anchor;
      const anchor *a = s->cap ? anchor_slot(s, (const char *)name) : NULL;
      if (a && a->name) { /* an unknown anchor is the loader's error */
        HB_CHECK(!a->open, HB_EINVALID, where, "alias *%s is inside its own anchor: a cycle",
                 (const char *)name);
        s->bytes += a->bytes;
        s->nodes += key ? 0 : a->nodes;
      }
      break;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
      HB_CHECK(s->depth < HB_YAML_MAX_DEPTH, HB_EINVALID, where, "nesting deeper than %d levels", HB_YAML_MAX_DEPTH);
      if (top >= 0) s->stack[top].kids++;
      s->nodes++;
      int map = ev->type == YAML_MAPPING_START_EVENT;
      s->stack[s->depth].map = map;
      s->stack[s->depth].kids = 0;
      s->stack[s->depth].bytes = s->bytes;
      s->stack[s->depth].nodes = s->nodes - 1;
      s->stack[s->depth].anchor = NULL;
      name = map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
      if (name) HB_CALL(anchor_define(s, (const char *)name, 0, 0, 1, &s->stack[s->depth].anchor));
      s->depth++;
      top = -1; /* counted in its parent already */
      break;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      if (s->depth > 0 && s->stack[--s->depth].anchor) {
        anchor *a = anchor_slot(s, s->stack[s->depth].anchor);
        a->bytes = s->bytes - s->stack[s->depth].bytes;
        a->nodes = s->nodes - s->stack[s->depth].nodes;
        a->open = 0;
      }
      return 0;
    default:
      return 0;
  }
  if (top >= 0) s->stack[top].kids++;
  HB_CHECK(s->nodes <= HB_YAML_MAX_NODES, HB_EINVALID, where, "more than %d YAML nodes%s", HB_YAML_MAX_NODES,
           ev->type == YAML_ALIAS_EVENT ? " once this alias is expanded" : "");
  if (s->bytes > HB_YAML_MAX_EXPANDED) return expanded_error(where);
  HB_CHECK(++s->events <= 4 * (size_t)HB_YAML_MAX_NODES, HB_EINVALID, s->src, "more than %d YAML nodes",
           HB_YAML_MAX_NODES);
  return 0;
}

/* Stream the events once before building a document: libyaml's loader is
 * slow on pathological nesting, and the events bound depth and size early. */
static int prescan(const char *src, const char *text, size_t len) {
  yaml_parser_t parser;
  HB_CHECK(yaml_parser_initialize(&parser), HB_EINTERNAL, "libyaml", "cannot initialise the YAML parser");
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  scan s = {.src = src};
  int rc = 0;
  for (int done = 0; !done && !rc;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      rc = syntax_error(src, &parser);
      break;
    }
    rc = scan_event(&s, &ev);
    done = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
  }
  for (size_t i = 0; i < s.cap; i++) free(s.slot[i].name);
  free(s.slot);
  yaml_parser_delete(&parser);
  return rc;
}

int hb_yaml_parse(const char *src, const char *text, size_t len, hb_node **out) {
  *out = NULL;
  HB_CHECK(len <= HB_YAML_MAX_BYTES, HB_EINVALID, src, "job text is %zu bytes; the limit is %d", len,
           HB_YAML_MAX_BYTES);
  HB_CALL(prescan(src, text, len));
  yaml_parser_t parser;
  yaml_document_t doc;
  HB_CHECK(yaml_parser_initialize(&parser), HB_EINTERNAL, "libyaml", "cannot initialise the YAML parser");
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int rc = 0;
  if (!yaml_parser_load(&parser, &doc)) {
    rc = syntax_error(src, &parser);
    yaml_parser_delete(&parser);
    return rc;
  }
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root) {
    rc = HB_FAIL(HB_EINVALID, src, "the document is empty");
  } else {
    yaml_document_t extra;
    builder b = {&doc, src, HB_YAML_MAX_NODES, HB_YAML_MAX_EXPANDED};
    rc = build(&b, root, 0, out);
    if (!rc && yaml_parser_load(&parser, &extra)) {
      if (yaml_document_get_root_node(&extra))
        rc = HB_FAIL(HB_EINVALID, src, "more than one YAML document; a job is one");
      yaml_document_delete(&extra);
    }
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  if (rc) {
    hb_node_free(*out);
    *out = NULL;
  }
  return rc;
}

hb_node *hb_node_child(const hb_node *map, const char *key) {
  if (!map || map->kind != HB_NODE_MAP) return NULL;
  for (size_t i = 0; i < map->n; i++)
    if (!strcmp(map->kids[i]->key, key)) return map->kids[i];
  return NULL;
}

static const char *kind_name(const hb_node *n) {
  return n->kind == HB_NODE_MAP ? "a map" : n->kind == HB_NODE_SEQ ? "a list" : "a scalar";
}

static int need_scalar(const hb_node *n, const char *what) {
  HB_CHECK(n->kind == HB_NODE_SCALAR, HB_EINVALID, hb_node_where(n, 0), "'%s' must be %s, not %s",
           n->key ? n->key : "value", what, kind_name(n));
  return 0;
}

int hb_node_string(const hb_node *n, const char **out) {
  HB_CALL(need_scalar(n, "a string"));
  *out = n->text;
  return 0;
}

int hb_node_int(const hb_node *n, long long *out) {
  HB_CALL(need_scalar(n, "an integer"));
  char *end;
  errno = 0;
  long long v = strtoll(n->text, &end, 10);
  HB_CHECK(n->plain && n->text[0] && !*end && !errno, HB_EINVALID, hb_node_where(n, 0),
           "'%s' must be an integer, got '%s'", n->key ? n->key : "value", n->text);
  *out = v;
  return 0;
}

int hb_node_double(const hb_node *n, double *out) {
  HB_CALL(need_scalar(n, "a number"));
  char *end;
  double v = strtod(n->text, &end);
  HB_CHECK(n->plain && n->text[0] && !*end && v == v, HB_EINVALID, hb_node_where(n, 0),
           "'%s' must be a number, got '%s'", n->key ? n->key : "value", n->text);
  *out = v;
  return 0;
}

static const char *const yaml11_true[] = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", NULL};
static const char *const yaml11_false[] = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", NULL};

static int in_list(const char *s, const char *const *list) {
  for (; *list; list++)
    if (!strcmp(s, *list)) return 1;
  return 0;
}

int hb_node_is_bool(const hb_node *n) {
  return n->kind == HB_NODE_SCALAR && n->plain && (in_list(n->text, yaml11_true) || in_list(n->text, yaml11_false));
}

int hb_node_is_null(const hb_node *n) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
  return n->kind == HB_NODE_SCALAR && n->plain && in_list(n->text, nulls);
}

int hb_node_bool(const hb_node *n, int *out) {
  HB_CALL(need_scalar(n, "true or false"));
  HB_CHECK(hb_node_is_bool(n), HB_EINVALID, hb_node_where(n, 0), "'%s' must be true or false, got '%s'",
           n->key ? n->key : "value", n->text);
  *out = in_list(n->text, yaml11_true);
  return 0;
}

int hb_node_numbers(const hb_node *n, double *out, size_t count) {
  HB_CHECK(n->kind == HB_NODE_SEQ && n->n == count, HB_EINVALID, hb_node_where(n, 0),
           "'%s' must be a list of %zu numbers, like [%s]", n->key ? n->key : "value", count,
           count == 2 ? "64, 64" : "...");
  for (size_t i = 0; i < count; i++) HB_CALL(hb_node_double(n->kids[i], &out[i]));
  return 0;
}

size_t hb_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 99;
  size_t prev[65], cur[65];
  for (size_t j = 0; j <= lb; j++) prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
      size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, sizeof cur);
  }
  return prev[lb];
}

/* ---- --set KEY=VALUE ---------------------------------------------------- */

static hb_node *seq_item(const hb_node *seq, const char *part) {
  char *end;
  unsigned long idx = strtoul(part, &end, 10);
  if (part[0] && !*end) return idx < seq->n ? seq->kids[idx] : NULL;
  for (size_t i = 0; i < seq->n; i++) {
    hb_node *name = hb_node_child(seq->kids[i], "name");
    if (name && name->kind == HB_NODE_SCALAR && !strcmp(name->text, part)) return seq->kids[i];
  }
  return NULL;
}

static int map_put(hb_node *map, const char *key, hb_node *value) {
  free(value->key);
  value->key = strdup(key);
  HB_CHECK(value->key, HB_EINTERNAL, "memory", "out of memory");
  for (size_t i = 0; i < map->n; i++)
    if (!strcmp(map->kids[i]->key, key)) {
      value->key_line = map->kids[i]->key_line;
      value->key_col = map->kids[i]->key_col;
      hb_node_free(map->kids[i]);
      map->kids[i] = value;
      return 0;
    }
  hb_node **k = realloc(map->kids, (map->n + 1) * sizeof *k);
  HB_CHECK(k, HB_EINTERNAL, "memory", "out of memory");
  map->kids = k;
  map->kids[map->n++] = value;
  return 0;
}

int hb_node_set_path(hb_node *root, const char *label) {
  /* label is "--set KEY=VALUE": it outlives the nodes and names them in errors */
  const char *assignment = label + (strncmp(label, "--set ", 6) ? 0 : 6);
  const char *eq = strchr(assignment, '=');
  HB_CHECK(eq && eq != assignment, HB_EINVALID, label, "--set needs KEY=VALUE, for example output.file=out.hspy");
  char path[512];
  HB_CHECK((size_t)(eq - assignment) < sizeof path, HB_EINVALID, label, "key path too long");
  memcpy(path, assignment, (size_t)(eq - assignment));
  path[eq - assignment] = 0;
  const char *vtext = eq + 1;
  hb_node *value;
  if (!*vtext) {
    HB_ALLOC(value, 1);
    value->kind = HB_NODE_SCALAR;
    value->text = strdup("");
    value->plain = 1;
    value->src = label;
  } else {
    HB_CALL(hb_yaml_parse(label, vtext, strlen(vtext), &value));
  }
  /* --set nodes report the assignment itself as their position */
  hb_node *stack[HB_YAML_MAX_DEPTH];
  int top = 0;
  stack[top++] = value;
  while (top) {
    hb_node *n = stack[--top];
    n->src = label;
    for (size_t i = 0; i < n->n && top < HB_YAML_MAX_DEPTH; i++) stack[top++] = n->kids[i];
  }
  hb_node *cur = root;
  char *save = NULL, *part = strtok_r(path, ".", &save);
  while (part) {
    char *next = strtok_r(NULL, ".", &save);
    if (cur->kind == HB_NODE_SEQ) {
      hb_node *item = seq_item(cur, part);
      if (!item) {
        hb_node_free(value);
        HB_RAISE(HB_EINVALID, label, "no item '%s' in the list '%s' (use an index or a kernel name)", part,
                 cur->key ? cur->key : "");
      }
      if (!next) {
        hb_node_free(value);
        HB_RAISE(HB_EINVALID, label, "cannot replace a whole list item; set one of its keys");
      }
      cur = item;
    } else if (cur->kind == HB_NODE_MAP) {
      if (!next) return map_put(cur, part, value);
      hb_node *child = hb_node_child(cur, part);
      if (!child) {
        HB_ALLOC(child, 1);
        child->kind = HB_NODE_MAP;
        child->src = label;
        HB_CALL(map_put(cur, part, child));
      }
      cur = child;
    } else {
      hb_node_free(value);
      HB_RAISE(HB_EINVALID, label, "'%s' is a scalar; it has no key '%s'", cur->key ? cur->key : "", part);
    }
    part = next;
  }
  hb_node_free(value);
  HB_RAISE(HB_EINVALID, label, "--set needs a key path before '='");
}
