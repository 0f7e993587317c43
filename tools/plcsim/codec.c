/* A tag's engineering value <-> its Modbus registers, as a PLC would hold
 * it. The encoding is node/plc's (the poller decodes with the same code, so
 * simulator and poller cannot disagree about a word order); what is added
 * here is a PLC's behaviour at the edges: values are clamped to the tag's
 * range (a real PLC saturates rather than wraps) and never NaN. */
#include <math.h>

#include "plcsim.h"
#include "plc.h"

void plcsim_tag_range(const struct vg_tag *t, double *lo, double *hi)
{
    vg_tag_range(t, lo, hi);
}

static uint16_t *regs(const struct vg_tag *t, const modbus_mapping_t *map)
{
    return t->kind == VG_REG_HOLDING ? map->tab_registers
                                     : map->tab_input_registers;
}

static uint8_t *bits(const struct vg_tag *t, const modbus_mapping_t *map)
{
    return t->kind == VG_REG_COIL ? map->tab_bits : map->tab_input_bits;
}

void plcsim_tag_put(const struct vg_tag *t, double eng, modbus_mapping_t *map)
{
    if (t->type == VG_DT_BOOL) {
        bits(t, map)[t->offset] = eng >= 0.5;
        return;
    }
    double lo, hi, raw;
    vg_tag_range(t, &lo, &hi);
    if (isnan(eng))
        eng = lo > 0 ? lo : (hi < 0 ? hi : 0);
    eng = eng < lo ? lo : eng > hi ? hi : eng;
    if (vg_plc_scale_to_raw(t, eng, &raw, NULL) != 0) {
        /* Rounding at the very edge of an integer range: saturate. */
        vg_dtype_range(t->type, &lo, &hi);
        raw = round(eng);
        raw = raw < lo ? lo : raw > hi ? hi : raw;
    }
    uint16_t r[2];
    unsigned n = 0;
    if (vg_plc_regs_encode(t->type, t->word_order, raw, r, &n, NULL) != 0)
        return;
    for (unsigned i = 0; i < n; i++)
        regs(t, map)[t->offset + i] = r[i];
}

double plcsim_tag_get(const struct vg_tag *t, const modbus_mapping_t *map)
{
    double value;
    if (vg_plc_tag_decode(t, regs(t, map), bits(t, map), (uint16_t)t->offset,
                          &value) != VG_PLC_GOOD)
        return 0; /* a NaN a client wrote into a float register */
    return value;
}
