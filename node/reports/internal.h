/* Private to node/reports/: what the CSV writer (csv.c) and the PDF writer
 * (pdf.c) share — field access on rows that vg_report_check accepted, time
 * and number formatting, the alarm message choice, and the switch to the
 * "C" numeric locale. */
#ifndef VG_REPORTS_INTERNAL_H
#define VG_REPORTS_INTERNAL_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>

#include "reports.h"

/* Room for any formatted time or number below, terminator included. */
#define VG_REP_TEXT_SIZE 48

/* Field KEY of object ROW as a string, or NULL when missing or null. Only for
 * rows that passed vg_report_check, which guarantees the type. */
const char *vg_rep_str(const json_t *row, const char *key);

/* ISO 8601 local time with milliseconds and offset,
 * "2024-05-01T12:00:00.123+02:00"; "" when the time cannot be represented. */
void vg_rep_time_iso(uint64_t ms, char buf[VG_REP_TEXT_SIZE]);

/* Local time as "%Y-%m-%d %H:%M:%S" (or FMT, a strftime format, when not
 * NULL); "" when the time cannot be represented. */
void vg_rep_time_local(uint64_t ms, const char *fmt, char buf[VG_REP_TEXT_SIZE]);

/* V in the fewest digits that read back as V ("%.15g" up to "%.17g"). */
void vg_rep_number(double v, char buf[VG_REP_TEXT_SIZE]);

/* A JSON integer or real as vg_rep_number / "%lld" would write it; "" for
 * anything else. */
void vg_rep_json_number(const json_t *v, char buf[VG_REP_TEXT_SIZE]);

/* Any JSON value as text for a cell: strings as they are, numbers as
 * vg_rep_json_number, true/false, "" for null or NULL, arrays and objects as
 * compact JSON. Returns a malloc'ed string (the caller frees it) or NULL
 * when out of memory. */
char *vg_rep_value_text(const json_t *v);

/* The text of the alarm journal row's message: LANGUAGE, else "en", else the
 * first entry; NULL when there is none. Borrowed from ROW. */
const char *vg_rep_alarm_message(const json_t *row, const char *language);

/* The default title of a report of TYPE ("Alarm report", …). */
const char *vg_rep_default_title(enum vg_report_type type);

/* Switch the calling thread to the "C" locale, so that printf writes '.'
 * as the decimal point, and back. vg_rep_locale_enter returns false when
 * out of memory. */
struct vg_rep_locale {
    locale_t c;
    locale_t old;
};
bool vg_rep_locale_enter(struct vg_rep_locale *l);
void vg_rep_locale_leave(struct vg_rep_locale *l);

#endif /* VG_REPORTS_INTERNAL_H */
