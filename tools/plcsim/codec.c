/* A tag's engineering value <-> its Modbus registers, as a PLC would hold
 * it: linear scaling to the raw value, rounding and clamping to the data
 * type (a real PLC saturates rather than wraps), 32-bit values split into two
 * registers in the tag's word order. */
#include <math.h>
#include <string.h>

#include "plcsim.h"

static void type_range(enum vg_dtype t, double *lo, double *hi)
{
    *lo = 0;
    *hi = 1;
    switch (t) {
    case VG_DT_BOOL: *lo = 0; *hi = 1; break;
    case VG_DT_INT16: *lo = INT16_MIN; *hi = INT16_MAX; break;
    case VG_DT_UINT16: *lo = 0; *hi = UINT16_MAX; break;
    case VG_DT_INT32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    case VG_DT_UINT32: *lo = 0; *hi = UINT32_MAX; break;
    case VG_DT_FLOAT32: *lo = -3.4e38; *hi = 3.4e38; break;
    }
}

void plcsim_tag_range(const struct vg_tag *t, double *lo, double *hi)
{
    if (t->scaled) {
        *lo = t->eng_min;
        *hi = t->eng_max;
    } else {
        type_range(t->type, lo, hi);
    }
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

static void put32(const struct vg_tag *t, uint32_t v, uint16_t *r)
{
    uint16_t hi = (uint16_t)(v >> 16), lo = (uint16_t)(v & 0xffffu);
    if (t->word_order == VG_WO_BIG) {
        r[t->offset] = hi;
        r[t->offset + 1] = lo;
    } else {
        r[t->offset] = lo;
        r[t->offset + 1] = hi;
    }
}

static uint32_t get32(const struct vg_tag *t, const uint16_t *r)
{
    uint32_t a = r[t->offset], b = r[t->offset + 1];
    return t->word_order == VG_WO_BIG ? (a << 16) | b : (b << 16) | a;
}

void plcsim_tag_put(const struct vg_tag *t, double eng, modbus_mapping_t *map)
{
    double raw = eng, lo, hi;
    uint16_t *r;

    if (t->type == VG_DT_BOOL) {
        bits(t, map)[t->offset] = eng >= 0.5;
        return;
    }
    if (t->scaled)
        raw = t->raw_min + (eng - t->eng_min) * (t->raw_max - t->raw_min) /
                               (t->eng_max - t->eng_min);
    if (isnan(raw))
        raw = 0;
    if (t->type != VG_DT_FLOAT32)
        raw = round(raw);
    type_range(t->type, &lo, &hi);
    raw = raw < lo ? lo : raw > hi ? hi : raw;
    r = regs(t, map);
    switch (t->type) {
    case VG_DT_INT16: r[t->offset] = (uint16_t)(int16_t)raw; break;
    case VG_DT_UINT16: r[t->offset] = (uint16_t)raw; break;
    case VG_DT_INT32: put32(t, (uint32_t)(int32_t)raw, r); break;
    case VG_DT_UINT32: put32(t, (uint32_t)raw, r); break;
    case VG_DT_FLOAT32: {
        float f = (float)raw;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        put32(t, u, r);
        break;
    }
    case VG_DT_BOOL: break;
    }
}

double plcsim_tag_get(const struct vg_tag *t, const modbus_mapping_t *map)
{
    const uint16_t *r;
    double raw = 0;

    if (t->type == VG_DT_BOOL)
        return bits(t, map)[t->offset] ? 1 : 0;
    r = regs(t, map);
    switch (t->type) {
    case VG_DT_INT16: raw = (int16_t)r[t->offset]; break;
    case VG_DT_UINT16: raw = r[t->offset]; break;
    case VG_DT_INT32: raw = (int32_t)get32(t, r); break;
    case VG_DT_UINT32: raw = get32(t, r); break;
    case VG_DT_FLOAT32: {
        uint32_t u = get32(t, r);
        float f;
        memcpy(&f, &u, sizeof f);
        raw = isfinite(f) ? f : 0;
        break;
    }
    case VG_DT_BOOL: break;
    }
    if (t->scaled)
        return t->eng_min + (raw - t->raw_min) * (t->eng_max - t->eng_min) /
                                (t->raw_max - t->raw_min);
    return raw;
}
