/* Parameter schemas: one table per kernel, checked generically (unknown keys,
 * types, required keys) and printed by `hyperbatch kernels`. */
#ifndef HB_PARAMS_H
#define HB_PARAMS_H

#include "hb_yaml.h"

typedef enum {
  HB_P_INT,
  HB_P_FLOAT,
  HB_P_BOOL,
  HB_P_STRING,
  HB_P_ENUM,    /* one of `choices`, "a|b|c" */
  HB_P_NUMBERS, /* flow list of `count` numbers */
  HB_P_MAP,     /* nested map checked against `sub` */
  HB_P_MAP_OR_PATH, /* a map as HB_P_MAP, or a string naming a file or FILE:/DATASET */
  HB_P_LIST,    /* a list; its items are checked by the owner */
} hb_ptype;

typedef struct hb_param_spec hb_param_spec;
struct hb_param_spec {
  const char *name;
  hb_ptype type;
  int required;
  const char *dflt;     /* documentation of the default, NULL if none */
  const char *choices;  /* HB_P_ENUM */
  int count;            /* HB_P_NUMBERS */
  const hb_param_spec *sub; /* HB_P_MAP, HB_P_MAP_OR_PATH */
  const char *help;
};
#define HB_PARAM_END {0}

/* Check `map` against `spec`: every key known (with a "did you mean" hint),
 * every type right, every required key present.  `what` names the map in
 * messages ("kernel 'bf'").  Keys listed in `extra` ("name|op") are allowed
 * and not checked. */
int hb_params_check(const hb_node *map, const hb_param_spec *spec,
                    const char *what, const char *extra);
const char *hb_ptype_name(const hb_param_spec *p);

#endif
