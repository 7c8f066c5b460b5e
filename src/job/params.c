/* Parameter tables: the generic checks of a map against a table, and the
 * typed parameters bound from it (hb_params.h).  With yamltree.c and job.c,
 * the only code that reads the YAML tree. */
#include "hb_params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_files.h"

/* One row's value. */
typedef struct {
  const hb_node *node;     /* the value as written; NULL when defaulted or absent */
  int has;                 /* given, or defaulted */
  hb_pvalue v;
  char *path;              /* HB_P_PATH, HB_P_MAP_OR_PATH's string: the resolved file */
  char *file_text;         /* HB_P_MAP_OR_PATH's string: its FILE as written */
  char *dataset;           /* HB_P_MAP_OR_PATH's string: "/DATASET" or NULL */
  double *nums;            /* HB_P_NUMBERS: nnums values */
  int nnums;
  const char **names;      /* HB_P_NAMES: nnames names; name_nodes[i] their nodes (NULL when defaulted) */
  const hb_node **name_nodes;
  int nnames;
  const hb_params *sub;    /* HB_P_MAP(_OR_PATH) with sub: the nested map's */
  hb_params *owned;        /* a defaulted map's parameters (no node to keep them) */
  const hb_params **items; /* HB_P_LIST with sub */
  size_t nitems;
} entry;

struct hb_params {
  const hb_param_spec *spec;
  const hb_node *map;  /* NULL: every value defaulted */
  char *where;         /* the map's position (of its key when it has one) */
  size_t n;            /* rows */
  entry *e;
  int checked;         /* bound by hb_params_check: unknown keys refused */
  int misused;         /* an accessor was misused (hb_params_misused) */
};

/* ---- the tables ------------------------------------------------------------ */

const char *hb_ptype_name(const hb_param_spec *p) {
  static char buf[160];
  switch (p->type) {
    case HB_P_INT:
      if (!p->choices) return "integer";
      snprintf(buf, sizeof buf, "integer or %s", p->choices);
      return buf;
    case HB_P_FLOAT: return "number";
    case HB_P_BOOL: return "boolean";
    case HB_P_STRING: return "string";
    case HB_P_ENUM: snprintf(buf, sizeof buf, "%s", p->choices); return buf;
    case HB_P_NUMBERS:
      if (p->count) snprintf(buf, sizeof buf, "[%d numbers]", p->count);
      else snprintf(buf, sizeof buf, "[numbers]");
      return buf;
    case HB_P_MAP: return "map";
    case HB_P_MAP_OR_PATH: return "map, or FILE[:/DATASET]";
    case HB_P_LIST: return p->sub ? "list of maps" : "list";
    case HB_P_PATH: return "path";
    case HB_P_NAMES: return "name or [names]";
  }
  return "?";
}

/* The shortest text that reads back as v: "8", "0.5", "1e-4", "1e-10". */
static void format_number(double v, char *buf, size_t cap) {
  char g[64] = "", e[64] = "";
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(g, sizeof g, "%.*g", prec, v);
    if (strtod(g, NULL) == v) break;
  }
  for (int prec = 0; prec <= 16; prec++) {
    snprintf(e, sizeof e, "%.*e", prec, v);
    if (strtod(e, NULL) == v) break;
  }
  /* "1e-04" -> "1e-4", "1.5e+20" -> "1.5e20" */
  char *x = strchr(e, 'e');
  if (x) {
    char *d = x + 1, *s = d;
    if (*s == '+') s++;
    else if (*s == '-') *d++ = *s++;
    while (*s == '0' && s[1]) s++;
    memmove(d, s, strlen(s) + 1);
  }
  snprintf(buf, cap, "%s", x && strlen(e) < strlen(g) ? e : g);
}

const char *hb_param_default_text(const hb_param_spec *p, char *buf, size_t cap) {
  if (!p->has_dflt) return NULL;
  char v[64];
  switch (p->type) {
    case HB_P_INT:
      if (p->dflt.s) snprintf(v, sizeof v, "%s", p->dflt.s);
      else snprintf(v, sizeof v, "%lld", p->dflt.i);
      break;
    case HB_P_FLOAT: format_number(p->dflt.f, v, sizeof v); break;
    case HB_P_BOOL: snprintf(v, sizeof v, "%s", p->dflt.b ? "true" : "false"); break;
    case HB_P_STRING:
    case HB_P_NAMES:
    case HB_P_ENUM: snprintf(v, sizeof v, "%s", p->dflt.s ? p->dflt.s : ""); break;
    default: return NULL;
  }
  snprintf(buf, cap, "%s%s%s", v, p->dflt_note ? ", " : "", p->dflt_note ? p->dflt_note : "");
  return buf;
}

static int in_choices(const char *choices, const char *s) {
  size_t n = strlen(s);
  for (const char *c = choices; c && *c;) {
    const char *bar = strchr(c, '|');
    size_t len = bar ? (size_t)(bar - c) : strlen(c);
    if (len == n && !strncmp(c, s, n)) return 1;
    if (!bar) break;
    c = bar + 1;
  }
  return 0;
}

static int allowed_extra(const char *extra, const char *key) { return extra && in_choices(extra, key); }

/* ---- binding ----------------------------------------------------------------- */

void hb_params_free(hb_params *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n; i++) {
    entry *e = &p->e[i];
    free(e->path);
    free(e->file_text);
    free(e->dataset);
    free(e->nums);
    free(e->names);
    free(e->name_nodes);
    free(e->items);
    hb_params_free(e->owned);
  }
  free(p->e);
  free(p->where);
  free(p);
}

/* A bare ~, null or nothing is YAML's null, not a name: taken as text it
 * would write files called `~` or `null`.  Quoted, it is a string. */
static int not_null(const hb_node *v, const hb_param_spec *p) {
  if (!hb_node_is_null(v)) return 0;
  if (!v->text[0]) HB_RAISE(HB_EINVALID, hb_node_where(v, 0), "'%s' is empty (a YAML null), not a string", p->name);
  HB_RAISE(HB_EINVALID, hb_node_where(v, 0), "'%s' is %s, a YAML null, not a string (quote it, \"%s\", if it is a name)",
           p->name, v->text, v->text);
}

static char *dup_or_null(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

static int bind_map(const hb_node *map, const hb_param_spec *spec, const char *what, const char *extra, int strict,
                    const char *where, hb_params **out);

/* A nested map (or NULL for an absent one) under `sub`: bound once, kept
 * with its node, or owned by the entry when there is no node. */
static int bind_sub(entry *e, const hb_node *v, const hb_param_spec *sub, const char *what, int strict,
                    const char *parent_where, const hb_params **out) {
  if (v && v->params) {
    HB_CHECK(v->params->spec == sub, HB_EINTERNAL, hb_node_where(v, 1), "'%s' is bound to another table", v->key);
    *out = v->params;
    return 0;
  }
  hb_params *p = NULL;
  HB_CALL(bind_map(v, sub, what, NULL, strict, parent_where, &p));
  if (v) ((hb_node *)v)->params = p; /* the tree owns it (hb_node_free) */
  else e->owned = p;
  *out = p;
  return 0;
}

/* Read one value with its row's type. */
static int read_value(entry *e, const hb_node *v, const hb_param_spec *p, const char *what, int strict,
                      const char *map_where) {
  e->node = v;
  e->has = 1;
  char sub_what[256];
  snprintf(sub_what, sizeof sub_what, "'%s' of %s", p->name, what);
  switch (p->type) {
    case HB_P_INT:
      if (p->choices && v->kind == HB_NODE_SCALAR && in_choices(p->choices, v->text)) {
        e->v.s = v->text;
        return 0;
      }
      if (p->choices && v->kind == HB_NODE_SCALAR && !hb_node_is_null(v)) {
        char *end;
        strtoll(v->text, &end, 10);
        HB_CHECK(v->plain && v->text[0] && !*end, HB_EINVALID, hb_node_where(v, 0),
                 "'%s' must be an integer or %s, got '%s'", p->name, p->choices, v->text);
      }
      return hb_node_int(v, &e->v.i);
    case HB_P_FLOAT: return hb_node_double(v, &e->v.f);
    case HB_P_BOOL: return hb_node_bool(v, &e->v.b);
    case HB_P_STRING:
      HB_CALL(not_null(v, p));
      return hb_node_string(v, &e->v.s);
    case HB_P_ENUM:
      HB_CALL(hb_node_string(v, &e->v.s));
      HB_CHECK(in_choices(p->choices, e->v.s), HB_EINVALID, hb_node_where(v, 0), "'%s' must be one of %s, got '%s'",
               p->name, p->choices, e->v.s);
      return 0;
    case HB_P_PATH:
      HB_CALL(not_null(v, p));
      HB_CALL(hb_node_string(v, &e->v.s));
      HB_CHECK(e->v.s[0], HB_EINVALID, hb_node_where(v, 0), "'%s' is empty; name a file", p->name);
      e->path = hb_path_resolve(v, e->v.s);
      HB_CHECK(e->path, HB_EINTERNAL, "memory", "out of memory");
      return 0;
    case HB_P_NUMBERS: {
      /* count 0: a list of any length up to HB_PARAM_MAX_NUMBERS */
      size_t n = p->count ? (size_t)p->count : v->kind == HB_NODE_SEQ ? v->n : 0;
      HB_CHECK(p->count || (v->kind == HB_NODE_SEQ && n >= 1 && n <= HB_PARAM_MAX_NUMBERS), HB_EINVALID,
               hb_node_where(v, 0), "'%s' must be a list of 1 to %d numbers, like [1, 2]", p->name,
               HB_PARAM_MAX_NUMBERS);
      HB_ALLOC(e->nums, n);
      e->nnums = (int)n;
      return hb_node_numbers(v, e->nums, n);
    }
    case HB_P_NAMES: {
      /* one name, or a list of them; the owner checks them against the data */
      int list = v->kind == HB_NODE_SEQ;
      size_t n = list ? v->n : 1;
      HB_CHECK(v->kind == HB_NODE_SCALAR || (list && n >= 1 && n <= HB_PARAM_MAX_NUMBERS), HB_EINVALID,
               hb_node_where(v, 0), "'%s' must be a name or a list of 1 to %d names, like [x, y]", p->name,
               HB_PARAM_MAX_NUMBERS);
      HB_ALLOC(e->names, n);
      HB_ALLOC(e->name_nodes, n);
      for (size_t i = 0; i < n; i++) {
        const hb_node *item = list ? v->kids[i] : v;
        HB_CHECK(item->kind == HB_NODE_SCALAR, HB_EINVALID, hb_node_where(item, 0),
                 "'%s' must be a name or a list of names, not a list of lists or maps", p->name);
        HB_CALL(not_null(item, p));
        HB_CALL(hb_node_string(item, &e->names[i]));
        e->name_nodes[i] = item;
        e->nnames = (int)i + 1;
      }
      e->v.s = e->names[0];
      return 0;
    }
    case HB_P_MAP_OR_PATH:
      if (v->kind == HB_NODE_SCALAR) {
        /* FILE or FILE:/DATASET; FILE resolves as every path does */
        HB_CALL(not_null(v, p));
        HB_CALL(hb_node_string(v, &e->v.s));
        const char *sep = strstr(v->text, ":/");
        size_t flen = sep ? (size_t)(sep - v->text) : strlen(v->text);
        HB_CHECK(flen, HB_EINVALID, hb_node_where(v, 0), "'%s' names no file", p->name);
        e->file_text = dup_or_null(v->text, flen);
        e->dataset = sep ? strdup(sep + 1) : NULL;
        e->path = e->file_text ? hb_path_resolve(v, e->file_text) : NULL;
        HB_CHECK(e->file_text && e->path && (!sep || e->dataset), HB_EINTERNAL, "memory", "out of memory");
        return 0;
      }
      /* fall through */
    case HB_P_MAP:
      HB_CHECK(v->kind == HB_NODE_MAP, HB_EINVALID, hb_node_where(v, 0), "'%s' must be a map of keys", p->name);
      if (p->sub) return bind_sub(e, v, p->sub, sub_what, strict, map_where, &e->sub);
      return 0;
    case HB_P_LIST:
      HB_CHECK(v->kind == HB_NODE_SEQ, HB_EINVALID, hb_node_where(v, 0), "'%s' must be a list (items start with '- ')",
               p->name);
      if (p->sub) {
        HB_ALLOC(e->items, v->n);
        for (size_t i = 0; i < v->n; i++) {
          char item_what[300];
          snprintf(item_what, sizeof item_what, "item %zu of %s", i + 1, sub_what);
          HB_CALL(bind_sub(e, v->kids[i], p->sub, item_what, strict, map_where, &e->items[i]));
          e->nitems = i + 1;
        }
      }
      return 0;
  }
  return 0;
}

static int unknown_key(const hb_node *v, const hb_param_spec *spec, const char *what) {
  const hb_param_spec *best = NULL;
  size_t bestd = 3;
  for (const hb_param_spec *q = spec; q->name; q++) {
    size_t dd = hb_edit_distance(v->key, q->name);
    if (dd < bestd) bestd = dd, best = q;
  }
  char known[512] = "";
  for (const hb_param_spec *q = spec; q->name; q++) {
    size_t len = strlen(known);
    snprintf(known + len, sizeof known - len, "%s%s", len ? ", " : "", q->name);
  }
  if (best)
    HB_RAISE(HB_EINVALID, hb_node_where(v, 1), "unknown key '%s' in %s (did you mean '%s'?)", v->key, what, best->name);
  HB_RAISE(HB_EINVALID, hb_node_where(v, 1), "unknown key '%s' in %s (known keys: %s)", v->key, what, known);
}

/* Unknown keys of a map bound without them checked, and of its nested maps. */
static int check_keys(const hb_params *p, const char *what, const char *extra) {
  if (p->checked || !p->map) return 0;
  for (size_t i = 0; i < p->map->n; i++) {
    const hb_node *v = p->map->kids[i];
    if (allowed_extra(extra, v->key)) continue;
    size_t r = 0;
    while (r < p->n && strcmp(p->spec[r].name, v->key)) r++;
    if (r == p->n) return unknown_key(v, p->spec, what);
    const entry *e = &p->e[r];
    char sub_what[300];
    snprintf(sub_what, sizeof sub_what, "'%s' of %s", p->spec[r].name, what);
    if (e->sub) HB_CALL(check_keys(e->sub, sub_what, NULL));
    for (size_t j = 0; j < e->nitems; j++) HB_CALL(check_keys(e->items[j], sub_what, NULL));
  }
  ((hb_params *)p)->checked = 1;
  return 0;
}

static int bind_map(const hb_node *map, const hb_param_spec *spec, const char *what, const char *extra, int strict,
                    const char *where, hb_params **out) {
  *out = NULL;
  HB_CHECK(!map || map->kind == HB_NODE_MAP, HB_EINVALID, hb_node_where(map, 0), "%s must be a map of keys", what);
  hb_params *p = calloc(1, sizeof *p);
  HB_CHECK(p, HB_EINTERNAL, "memory", "out of memory");
  while (spec[p->n].name) p->n++;
  p->spec = spec;
  p->map = map;
  p->checked = strict;
  p->e = calloc(p->n ? p->n : 1, sizeof *p->e);
  p->where = strdup(map ? hb_node_where(map, 1) : where ? where : "job");
  int rc = p->e && p->where ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  /* in document order, so that the first error in the text is the one reported */
  for (size_t i = 0; !rc && map && i < map->n; i++) {
    const hb_node *v = map->kids[i];
    size_t r = 0;
    while (r < p->n && strcmp(spec[r].name, v->key)) r++;
    if (r == p->n) {
      if (strict && !allowed_extra(extra, v->key)) rc = unknown_key(v, spec, what);
      continue;
    }
    rc = read_value(&p->e[r], v, &spec[r], what, strict, p->where);
  }
  for (size_t r = 0; !rc && r < p->n; r++) {
    entry *e = &p->e[r];
    if (e->has) continue;
    if (spec[r].required) {
      rc = HB_FAIL(HB_EINVALID, p->where, "%s is missing the required key '%s'", what, spec[r].name);
    } else if (spec[r].has_dflt) {
      e->has = 1;
      e->v = spec[r].dflt;
    } else if (spec[r].type == HB_P_MAP && spec[r].sub) {
      /* an absent map: every value its default, positions at this map */
      char sub_what[256];
      snprintf(sub_what, sizeof sub_what, "'%s' of %s", spec[r].name, what);
      rc = bind_sub(e, NULL, spec[r].sub, sub_what, strict, p->where, &e->sub);
    }
  }
  if (rc) {
    hb_params_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int hb_params_check(const hb_node *map, const hb_param_spec *spec, const char *what, const char *extra) {
  HB_CHECK(map && map->kind == HB_NODE_MAP, HB_EINVALID, hb_node_where(map, 0), "%s must be a map of keys", what);
  if (map->params) {
    HB_CHECK(map->params->spec == spec, HB_EINTERNAL, hb_node_where(map, 1), "%s is bound to another table", what);
    return check_keys(map->params, what, extra);
  }
  hb_params *p;
  HB_CALL(bind_map(map, spec, what, extra, 1, NULL, &p));
  ((hb_node *)map)->params = p; /* kept with the tree, freed by hb_node_free */
  return 0;
}

int hb_params_bind(const hb_node *map, const hb_param_spec *spec, const hb_params **out) {
  *out = NULL;
  HB_CHECK(map, HB_EINTERNAL, "parameters", "hb_params_bind needs a map");
  if (map->params) {
    HB_CHECK(map->params->spec == spec, HB_EINTERNAL, hb_node_where(map, 1), "the map is bound to another table");
    *out = map->params;
    return 0;
  }
  char what[160];
  snprintf(what, sizeof what, "%s%s%s", map->key ? "'" : "", map->key ? map->key : "the parameters",
           map->key ? "'" : "");
  hb_params *p;
  HB_CALL(bind_map(map, spec, what, NULL, 0, NULL, &p));
  ((hb_node *)map)->params = p; /* kept with the tree, freed by hb_node_free */
  *out = p;
  return 0;
}

/* ---- accessors --------------------------------------------------------------- */

static const entry *find(const hb_params *p, const char *name, int r_out[1]) {
  if (!p) return NULL;
  for (size_t r = 0; r < p->n; r++)
    if (!strcmp(p->spec[r].name, name)) {
      if (r_out) r_out[0] = (int)r;
      return &p->e[r];
    }
  return NULL;
}

static const char *type_names(unsigned mask) {
  static char buf[200];
  static const char *const names[] = {"integer", "number", "boolean", "string", "enum", "numbers",
                                      "map", "map-or-path", "list", "path"};
  buf[0] = 0;
  for (unsigned t = 0; t < sizeof names / sizeof names[0]; t++)
    if (mask & (1u << t)) {
      size_t len = strlen(buf);
      snprintf(buf + len, sizeof buf - len, "%s%s", len ? " or " : "", names[t]);
    }
  return buf;
}

/* The entry of `name` if its row's type is in `types` (a mask of 1 << type);
 * otherwise record the misuse (HB_EINTERNAL) and return NULL. */
static const entry *get(const hb_params *p, const char *name, unsigned types, const char *accessor) {
  int r = -1;
  const entry *e = find(p, name, &r);
  if (!p) {
    HB_FAIL(HB_EINTERNAL, "parameters", "%s('%s') on no parameters", accessor, name);
    return NULL;
  }
  if (e && (types & (1u << p->spec[r].type))) return e;
  ((hb_params *)p)->misused = 1; /* p is always heap-allocated by bind_map */
  if (!e)
    HB_FAIL(HB_EINTERNAL, p->where, "%s('%s'): no parameter '%s' in this table", accessor, name, name);
  else
    HB_FAIL(HB_EINTERNAL, p->where, "%s('%s'): '%s' is a %s parameter, not %s", accessor, name, name,
            hb_ptype_name(&p->spec[r]), type_names(types));
  return NULL;
}

#define T(x) (1u << (x))

long long hb_param_int(const hb_params *p, const char *name) {
  const entry *e = get(p, name, T(HB_P_INT), "hb_param_int");
  if (e && e->has && e->v.s) { /* a word: ask hb_param_word first */
    ((hb_params *)p)->misused = 1;
    HB_FAIL(HB_EINTERNAL, p->where, "hb_param_int('%s'): the value is the word '%s'; check hb_param_word first", name,
            e->v.s);
    return 0;
  }
  return e && e->has ? e->v.i : 0;
}

const char *hb_param_word(const hb_params *p, const char *name) {
  const entry *e = get(p, name, T(HB_P_INT), "hb_param_word");
  return e && e->has ? e->v.s : NULL;
}

double hb_param_float(const hb_params *p, const char *name) {
  const entry *e = get(p, name, T(HB_P_FLOAT), "hb_param_float");
  return e && e->has ? e->v.f : 0;
}

int hb_param_bool(const hb_params *p, const char *name) {
  const entry *e = get(p, name, T(HB_P_BOOL), "hb_param_bool");
  return e && e->has ? e->v.b : 0;
}

const char *hb_param_str(const hb_params *p, const char *name) {
  const entry *e =
      get(p, name, T(HB_P_STRING) | T(HB_P_ENUM) | T(HB_P_PATH) | T(HB_P_MAP_OR_PATH), "hb_param_str");
  if (!e || !e->has) return NULL;
  if (e->path) return e->path;
  return e->node && e->node->kind != HB_NODE_SCALAR ? NULL : e->v.s;
}

const char *hb_param_dataset(const hb_params *p, const char *name) {
  const entry *e = get(p, name, T(HB_P_MAP_OR_PATH), "hb_param_dataset");
  return e ? e->dataset : NULL;
}

int hb_param_numbers(const hb_params *p, const char *name, double *out) {
  const entry *e = get(p, name, T(HB_P_NUMBERS), "hb_param_numbers");
  if (!e || !e->nums) return 0;
  memcpy(out, e->nums, (size_t)e->nnums * sizeof *out);
  return e->nnums;
}

int hb_param_names(const hb_params *p, const char *name, const char **out) {
  const entry *e = get(p, name, T(HB_P_NAMES), "hb_param_names");
  if (!e || !e->has) return 0;
  if (!e->names) { /* defaulted: the row's one name */
    out[0] = e->v.s;
    return 1;
  }
  memcpy(out, e->names, (size_t)e->nnames * sizeof *out);
  return e->nnames;
}

const char *hb_param_where_item(const hb_params *p, const char *name, int i) {
  const entry *e = get(p, name, T(HB_P_NAMES), "hb_param_where_item");
  if (!e) return p ? p->where : "job";
  if (i < 0 || i >= e->nnames || !e->name_nodes[i]) return hb_param_where(p, name);
  return hb_node_where(e->name_nodes[i], 0);
}

const hb_params *hb_param_map(const hb_params *p, const char *name) {
  const entry *e = get(p, name, T(HB_P_MAP) | T(HB_P_MAP_OR_PATH), "hb_param_map");
  return e ? e->sub : NULL;
}

size_t hb_param_count(const hb_params *p, const char *name) {
  const entry *e = get(p, name, T(HB_P_LIST), "hb_param_count");
  return e ? e->nitems : 0;
}

const hb_params *hb_param_item(const hb_params *p, const char *name, size_t i) {
  const entry *e = get(p, name, T(HB_P_LIST), "hb_param_item");
  if (!e) return NULL;
  if (i >= e->nitems) {
    ((hb_params *)p)->misused = 1;
    HB_FAIL(HB_EINTERNAL, p->where, "hb_param_item('%s', %zu): the list has %zu items", name, i, e->nitems);
    return NULL;
  }
  return e->items[i];
}

const hb_node *hb_param_node(const hb_params *p, const char *name) {
  const entry *e = get(p, name, T(HB_P_LIST) | T(HB_P_MAP), "hb_param_node");
  return e ? e->node : NULL;
}

int hb_param_given(const hb_params *p, const char *name) {
  const entry *e = get(p, name, ~0u, "hb_param_given");
  return e && e->node;
}

const char *hb_param_where(const hb_params *p, const char *name) {
  const entry *e = get(p, name, ~0u, "hb_param_where");
  if (!e) return p ? p->where : "job";
  return e->node ? hb_node_where(e->node, 0) : p->where;
}

const char *hb_param_where_key(const hb_params *p, const char *name) {
  const entry *e = get(p, name, ~0u, "hb_param_where_key");
  if (!e) return p ? p->where : "job";
  return e->node ? hb_node_where(e->node, 1) : p->where;
}

const char *hb_params_where(const hb_params *p) { return p ? p->where : "job"; }

const char *hb_param_text(const hb_params *p, const char *name) {
  const entry *e = get(p, name, ~0u, "hb_param_text");
  if (!e || !e->node || e->node->kind != HB_NODE_SCALAR) return NULL;
  return e->file_text ? e->file_text : e->node->text;
}

int hb_params_misused(const hb_params *p) {
  if (!p) return 0;
  if (p->misused) return hb_error_trace(HB_EINTERNAL, __FILE__, __LINE__);
  for (size_t r = 0; r < p->n; r++) {
    const entry *e = &p->e[r];
    if (e->sub) HB_CALL(hb_params_misused(e->sub));
    for (size_t i = 0; i < e->nitems; i++) HB_CALL(hb_params_misused(e->items[i]));
  }
  return 0;
}
