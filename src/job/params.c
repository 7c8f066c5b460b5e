/* Generic checks of a map against a parameter table. */
#include "hb_params.h"

#include <stdio.h>
#include <string.h>

#include "hb_error.h"

const char *hb_ptype_name(const hb_param_spec *p) {
  static char buf[160];
  switch (p->type) {
    case HB_P_INT: return "integer";
    case HB_P_FLOAT: return "number";
    case HB_P_BOOL: return "boolean";
    case HB_P_STRING: return "string";
    case HB_P_ENUM: snprintf(buf, sizeof buf, "%s", p->choices); return buf;
    case HB_P_NUMBERS: snprintf(buf, sizeof buf, "[%d numbers]", p->count); return buf;
    case HB_P_MAP: return "map";
    case HB_P_MAP_OR_PATH: return "map, or FILE[:/DATASET]";
    case HB_P_LIST: return "list";
  }
  return "?";
}

static int in_choices(const char *choices, const char *s) {
  size_t n = strlen(s);
  for (const char *c = choices; *c;) {
    const char *bar = strchr(c, '|');
    size_t len = bar ? (size_t)(bar - c) : strlen(c);
    if (len == n && !strncmp(c, s, n)) return 1;
    if (!bar) break;
    c = bar + 1;
  }
  return 0;
}

static int allowed_extra(const char *extra, const char *key) { return extra && in_choices(extra, key); }

/* A bare ~, null or nothing is YAML's null, not a name: taken as text it
 * would write files called `~` or `null`.  Quoted, it is a string. */
static int not_null(const hb_node *v, const hb_param_spec *p) {
  if (!hb_node_is_null(v)) return 0;
  if (!v->text[0]) HB_RAISE(HB_EINVALID, hb_node_where(v, 0), "'%s' is empty (a YAML null), not a string", p->name);
  HB_RAISE(HB_EINVALID, hb_node_where(v, 0), "'%s' is %s, a YAML null, not a string (quote it, \"%s\", if it is a name)",
           p->name, v->text, v->text);
}

static int check_value(const hb_node *v, const hb_param_spec *p, const char *what) {
  long long i;
  double d;
  int b;
  const char *s;
  double nums[16];
  switch (p->type) {
    case HB_P_INT: return hb_node_int(v, &i);
    case HB_P_FLOAT: return hb_node_double(v, &d);
    case HB_P_BOOL: return hb_node_bool(v, &b);
    case HB_P_STRING:
      HB_CALL(not_null(v, p));
      return hb_node_string(v, &s);
    case HB_P_ENUM:
      HB_CALL(hb_node_string(v, &s));
      HB_CHECK(in_choices(p->choices, s), HB_EINVALID, hb_node_where(v, 0), "'%s' must be one of %s, got '%s'",
               p->name, p->choices, s);
      return 0;
    case HB_P_NUMBERS: return hb_node_numbers(v, nums, (size_t)p->count);
    case HB_P_MAP_OR_PATH:
      /* a string names a file; otherwise it is a map */
      if (v->kind == HB_NODE_SCALAR) {
        HB_CALL(not_null(v, p));
        return hb_node_string(v, &s);
      }
      /* fall through */
    case HB_P_MAP:
      HB_CHECK(v->kind == HB_NODE_MAP, HB_EINVALID, hb_node_where(v, 0), "'%s' must be a map of keys", p->name);
      if (p->sub) {
        char sub[256];
        snprintf(sub, sizeof sub, "'%s' of %s", p->name, what);
        return hb_params_check(v, p->sub, sub, NULL);
      }
      return 0;
    case HB_P_LIST:
      HB_CHECK(v->kind == HB_NODE_SEQ, HB_EINVALID, hb_node_where(v, 0), "'%s' must be a list (items start with '- ')",
               p->name);
      return 0;
  }
  return 0;
}

int hb_params_check(const hb_node *map, const hb_param_spec *spec, const char *what, const char *extra) {
  HB_CHECK(map && map->kind == HB_NODE_MAP, HB_EINVALID, hb_node_where(map, 0), "%s must be a map of keys", what);
  for (size_t i = 0; i < map->n; i++) {
    const hb_node *v = map->kids[i];
    if (allowed_extra(extra, v->key)) continue;
    const hb_param_spec *p = spec;
    while (p->name && strcmp(p->name, v->key)) p++;
    if (!p->name) {
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
        HB_RAISE(HB_EINVALID, hb_node_where(v, 1), "unknown key '%s' in %s (did you mean '%s'?)", v->key, what,
                 best->name);
      HB_RAISE(HB_EINVALID, hb_node_where(v, 1), "unknown key '%s' in %s (known keys: %s)", v->key, what, known);
    }
    HB_CALL(check_value(v, p, what));
  }
  for (const hb_param_spec *p = spec; p->name; p++)
    HB_CHECK(!p->required || hb_node_child(map, p->name), HB_EINVALID, hb_node_where(map, 1),
             "%s is missing the required key '%s'", what, p->name);
  return 0;
}
