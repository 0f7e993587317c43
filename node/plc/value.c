/* Values: registers and bits to engineering values and back, and the
 * deadband rule that decides which readings are worth reporting.
 *
 * Word order: Modbus registers are big-endian 16-bit words; a 32-bit value
 * spans two of them. "big" (ABCD) puts the high word in the lower register,
 * "little" (CDAB, common on meters and some PLC families) the low word.
 * Integer conversions are written out arithmetically rather than through
 * casts of out-of-range values, whose results C leaves to the
 * implementation (unsigned -> signed) or undefined (double -> float). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "plc.h"

static uint32_t words_get(enum vg_word_order wo, const uint16_t *regs)
{
    if (wo == VG_WO_LITTLE)
        return (uint32_t)regs[1] << 16 | regs[0];
    return (uint32_t)regs[0] << 16 | regs[1];
}

static void words_put(enum vg_word_order wo, uint32_t v, uint16_t *regs)
{
    uint16_t hi = (uint16_t)(v >> 16), lo = (uint16_t)(v & 0xFFFF);
    regs[0] = wo == VG_WO_LITTLE ? lo : hi;
    regs[1] = wo == VG_WO_LITTLE ? hi : lo;
}

enum vg_plc_quality vg_plc_regs_decode(enum vg_dtype type,
                                       enum vg_word_order wo,
                                       const uint16_t *regs, double *raw)
{
    uint32_t u;
    float f;

    switch (type) {
    case VG_DT_BOOL:
        *raw = regs[0] != 0;
        return VG_PLC_GOOD;
    case VG_DT_INT16:
        *raw = regs[0] >= 0x8000 ? (double)regs[0] - 65536.0 : regs[0];
        return VG_PLC_GOOD;
    case VG_DT_UINT16:
        *raw = regs[0];
        return VG_PLC_GOOD;
    case VG_DT_INT32:
        u = words_get(wo, regs);
        *raw = u >= 0x80000000u ? (double)u - 4294967296.0 : (double)u;
        return VG_PLC_GOOD;
    case VG_DT_UINT32:
        *raw = words_get(wo, regs);
        return VG_PLC_GOOD;
    case VG_DT_FLOAT32:
        u = words_get(wo, regs);
        /* IEEE-754 binary32 is what every supported compiler's float is;
         * memcpy is the defined way to reinterpret the bits. */
        memcpy(&f, &u, sizeof(f));
        if (!isfinite(f))
            return VG_PLC_BAD_VALUE;
        *raw = f;
        return VG_PLC_GOOD;
    }
    return VG_PLC_BAD_VALUE;
}

enum vg_plc_quality vg_plc_tag_decode(const struct vg_tag *t,
                                      const uint16_t *regs,
                                      const uint8_t *bits, uint16_t pos,
                                      double *value)
{
    double raw;
    if (t->kind == VG_REG_COIL || t->kind == VG_REG_DISCRETE) {
        *value = bits[pos] != 0;
        return VG_PLC_GOOD;
    }
    enum vg_plc_quality q = vg_plc_regs_decode(t->type, t->word_order,
                                               regs + pos, &raw);
    if (q != VG_PLC_GOOD)
        return q;
    *value = vg_plc_scale_to_eng(t, raw);
    return VG_PLC_GOOD;
}

double vg_plc_scale_to_eng(const struct vg_tag *t, double raw)
{
    if (!t->scaled)
        return raw;
    return t->eng_min + (raw - t->raw_min) * (t->eng_max - t->eng_min) /
                            (t->raw_max - t->raw_min);
}

/* RAW checked against TYPE: integral for integer types, inside the range. */
static int raw_check(enum vg_dtype type, double raw, char *errmsg)
{
    double lo, hi;
    vg_dtype_range(type, &lo, &hi);
    if (!isfinite(raw) || raw < lo || raw > hi) {
        vg_errf(errmsg, "raw value %.17g does not fit %s (%.17g..%.17g)",
                raw, vg_dtype_name(type), lo, hi);
        return VG_EINVAL;
    }
    if (type != VG_DT_FLOAT32 && raw != floor(raw)) {
        vg_errf(errmsg, "raw value %.17g is not an integer, as %s needs",
                raw, vg_dtype_name(type));
        return VG_EINVAL;
    }
    return 0;
}

int vg_plc_scale_to_raw(const struct vg_tag *t, double eng, double *raw,
                        char *errmsg)
{
    double r;
    if (!isfinite(eng)) {
        vg_errf(errmsg, "value for %s is not a finite number",
                t->name ? t->name : "tag");
        return VG_EINVAL;
    }
    r = eng;
    if (t->scaled)
        r = t->raw_min + (eng - t->eng_min) * (t->raw_max - t->raw_min) /
                             (t->eng_max - t->eng_min);
    /* Scaling rarely lands on an integer (27648 * 0.37 ...); the nearest
     * raw step is what the operator meant. A bool is not rounded: writing
     * 0.6 to a switch is a mistake, not a request to switch it on. */
    if (t->type != VG_DT_FLOAT32 && t->type != VG_DT_BOOL)
        r = round(r);
    int rv = raw_check(t->type, r, NULL);
    if (rv != 0) {
        vg_errf(errmsg, "value %.17g for %s is raw %.17g, which does not "
                "fit %s", eng, t->name ? t->name : "tag", r,
                vg_dtype_name(t->type));
        return rv;
    }
    *raw = r;
    return 0;
}

int vg_plc_regs_encode(enum vg_dtype type, enum vg_word_order wo, double raw,
                       uint16_t regs[2], unsigned *n, char *errmsg)
{
    uint32_t u;
    float f;

    if (type == VG_DT_BOOL) {
        vg_errf(errmsg, "bool values are written to coils, not registers");
        return VG_EINVAL;
    }
    int rv = raw_check(type, raw, errmsg);
    if (rv != 0)
        return rv;
    switch (type) {
    case VG_DT_BOOL:
        break;
    case VG_DT_INT16:
        regs[0] = (uint16_t)(raw < 0 ? raw + 65536.0 : raw);
        *n = 1;
        return 0;
    case VG_DT_UINT16:
        regs[0] = (uint16_t)raw;
        *n = 1;
        return 0;
    case VG_DT_INT32:
        u = (uint32_t)(raw < 0 ? raw + 4294967296.0 : raw);
        words_put(wo, u, regs);
        *n = 2;
        return 0;
    case VG_DT_UINT32:
        words_put(wo, (uint32_t)raw, regs);
        *n = 2;
        return 0;
    case VG_DT_FLOAT32:
        f = (float)raw; /* in range: raw_check bounded it by FLT_MAX */
        memcpy(&u, &f, sizeof(u));
        words_put(wo, u, regs);
        *n = 2;
        return 0;
    }
    vg_errf(errmsg, "unknown data type");
    return VG_EINVAL;
}

int vg_plc_write_encode(const struct vg_tag *t, double eng,
                        struct vg_plc_write *w, char *errmsg)
{
    double raw;
    unsigned n = 0;
    int rv;

    memset(w, 0, sizeof(*w));
    if (t->kind != VG_REG_COIL && t->kind != VG_REG_HOLDING) {
        vg_errf(errmsg, "%s is a %s and cannot be written",
                t->name ? t->name : "tag",
                t->kind == VG_REG_DISCRETE ? "discrete input"
                                           : "input register");
        return VG_EINVAL;
    }
    rv = vg_plc_scale_to_raw(t, eng, &raw, errmsg);
    if (rv != 0)
        return rv;
    if (t->offset > 0xFFFF) {
        vg_errf(errmsg, "address %u is out of range", (unsigned)t->offset);
        return VG_EINVAL;
    }
    w->addr = (uint16_t)t->offset;
    if (t->kind == VG_REG_COIL) {
        if (t->type != VG_DT_BOOL) {
            vg_errf(errmsg, "a coil holds a bool, not %s",
                    vg_dtype_name(t->type));
            return VG_EINVAL;
        }
        w->function = VG_PLC_FC_WRITE_COIL;
        w->count = 1;
        w->bit = raw != 0;
        return 0;
    }
    rv = vg_plc_regs_encode(t->type, t->word_order, raw, w->regs, &n, errmsg);
    if (rv != 0)
        return rv;
    if ((uint32_t)t->offset + n > 65536) {
        vg_errf(errmsg, "address %u runs past 65535", (unsigned)t->offset);
        return VG_EINVAL;
    }
    w->count = (uint16_t)n;
    w->function = n == 1 ? VG_PLC_FC_WRITE_REGISTER : VG_PLC_FC_WRITE_REGISTERS;
    return 0;
}

bool vg_plc_deadband_report(const struct vg_plc_reported *last,
                            double deadband, double value,
                            enum vg_plc_quality q)
{
    if (!last->valid || q != last->quality)
        return true;
    if (q != VG_PLC_GOOD)
        return false;
    return fabs(value - last->value) > deadband;
}
