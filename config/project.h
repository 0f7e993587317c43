/* Vigil plant projects: read a project folder (or an in-memory bundle of its
 * files), parse it, check every reference and rule, and describe it.
 *
 * A project is a folder (config/FORMAT.md has the full format):
 *   project.yaml       name, languages, plant sections, PLCs, stations,
 *                      roles, reports (YAML, libfyaml)
 *   tags.csv           one row per process tag (CSV, libcsv)
 *   alarms.csv         one row per alarm
 *   screens/NAME.yaml  one file per screen
 *
 * The same code runs in vigilctl (validate before sending), in vigild (the
 * leader validates again what it received before committing it) and in the
 * stations (which parse the active project they fetched), so everyone agrees
 * on what a project means.
 *
 * Parsing never stops at the first problem: every error found is added to a
 * struct vg_diags with file, line and column, and parsing goes on with the
 * next row, object or file. A project with errors is still returned (so
 * tools can say everything at once) but must not be used.
 *
 * Ownership: a struct vg_project owns all its strings and arrays; locations
 * point at file names owned by the project. Free with vg_project_free. */
#ifndef VG_PROJECT_H
#define VG_PROJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"

#define VG_PROJECT_MAX_LANGS 8
/* Bytes of one alarm message in one language, at most: what an alarm change
 * carries (replication.h, VG_REPL_ALARM_TEXT_MAX; node/alarm_duty.c asserts
 * that it holds this). A longer message loaded into a cluster could never
 * be committed with its alarm: the leader's alarm engine would be rebuilt
 * again and again and refuse every operator action meanwhile. */
#define VG_PROJECT_MAX_ALARM_TEXT 1024
#define VG_PROJECT_MAX_FILES 4096
/* Limits that keep a hostile bundle from exhausting memory. */
#define VG_PROJECT_MAX_FILE_SIZE (64u * 1024u * 1024u)
#define VG_PROJECT_MAX_TOTAL_SIZE (256u * 1024u * 1024u)
#define VG_PROJECT_DIGEST_SIZE 32

/* ------------------------------------------------------------------ files */

struct vg_project_file {
    char *path; /* relative, '/'-separated: "tags.csv", "screens/main.yaml" */
    char *data; /* contents, with a terminating NUL not counted in len */
    size_t len;
};

/* The files of one project, sorted by path. */
struct vg_project_files {
    struct vg_project_file *v;
    size_t n;
};

/* Read the project files below DIR (project.yaml, tags.csv, alarms.csv,
 * screens/ *.yaml; other files are ignored). Returns VG_EIO / VG_ETOOBIG /
 * VG_ENOMEM with a sentence in ERRMSG. FS must be zeroed or freed first. */
int vg_project_files_read_dir(struct vg_project_files *fs, const char *dir,
                              char *errmsg);

/* Add one file (PATH and DATA are copied); replaces a file of the same path. */
int vg_project_files_add(struct vg_project_files *fs, const char *path,
                         const char *data, size_t len);

void vg_project_files_free(struct vg_project_files *fs);

/* A project travels (client to leader, through Raft, leader to stations) as a
 * bundle: zlib-compressed JSON {"files": {PATH: TEXT, ...}}. *OUT is malloc'd
 * (caller frees). */
int vg_project_files_pack(const struct vg_project_files *fs,
                          unsigned char **out, size_t *out_len, char *errmsg);

/* Inverse of pack; rejects anything that is not a well-formed bundle (bad
 * compression, bad JSON, unsafe paths, limits exceeded) with VG_EMALFORMED or
 * VG_ETOOBIG and a sentence in ERRMSG. FS must be zeroed or freed first. */
int vg_project_files_unpack(const unsigned char *buf, size_t len,
                            struct vg_project_files *fs, char *errmsg);

/* BLAKE2b-256 over the sorted paths and contents: the identity of a project
 * version, independent of compression. */
void vg_project_files_digest(const struct vg_project_files *fs,
                             unsigned char out[VG_PROJECT_DIGEST_SIZE]);

/* ------------------------------------------------------------ diagnostics */

/* A position in a project file. FILE is owned by whoever made the location
 * (the project, or the diags list it was copied into); LINE and COL count
 * from 1, 0 means "the whole file". */
struct vg_loc {
    const char *file;
    uint32_t line;
    uint32_t col;
};

struct vg_diag {
    char *file;
    uint32_t line;
    uint32_t col;
    char *msg;
};

struct vg_diags {
    struct vg_diag *v;
    size_t n;
    size_t cap;
    size_t dropped; /* errors beyond VG_DIAGS_MAX, counted but not kept */
    /* Private: "did you mean" hints compare names, which costs O(bad
     * references x names); this bounds the work per parse so that a hostile
     * project full of typos still validates quickly. */
    uint64_t hint_work;
};

#define VG_DIAGS_MAX 10000

void vg_diags_init(struct vg_diags *d);
void vg_diags_free(struct vg_diags *d);
void vg_diags_add(struct vg_diags *d, struct vg_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sort by file, line, column (stable for equal positions). */
void vg_diags_sort(struct vg_diags *d);
/* "FILE:LINE:COL: error: MSG" for entry I into OUT. */
void vg_diag_format(const struct vg_diag *e, char *out, size_t size);

/* ------------------------------------------------------------------ model */

/* A text in every project language; s[i] belongs to languages[i] (NULL when
 * missing, which validation reports). */
struct vg_text {
    char *s[VG_PROJECT_MAX_LANGS];
    struct vg_loc loc;
};

/* A reference by name to another object; INDEX is resolved by validation
 * (-1 while unresolved or unknown). */
struct vg_ref {
    char *name;
    int index;
    struct vg_loc loc;
};

struct vg_section {
    char *name;
    int parent; /* index into sections, -1 for a top-level area */
    struct vg_text title;
    struct vg_loc loc;
};

struct vg_plc {
    char *name;
    char *host;
    int port;            /* 1..65535, default 502 */
    int unit_id;         /* 0..255, default 1 */
    unsigned poll_ms;    /* default 1000 */
    unsigned timeout_ms; /* default 1000 */
    int fencing_register; /* holding register for the poller's node/term, -1 none */
    struct vg_loc loc;
};

enum vg_reg_kind {
    VG_REG_COIL,     /* "co": read/write bits */
    VG_REG_DISCRETE, /* "di": read-only bits */
    VG_REG_HOLDING,  /* "hr": read/write 16-bit registers */
    VG_REG_INPUT,    /* "ir": read-only 16-bit registers */
};

enum vg_dtype {
    VG_DT_BOOL,
    VG_DT_INT16,
    VG_DT_UINT16,
    VG_DT_INT32,
    VG_DT_UINT32,
    VG_DT_FLOAT32,
};

enum vg_word_order {
    VG_WO_BIG,    /* "big": high word in the lower register (ABCD) */
    VG_WO_LITTLE, /* "little": low word in the lower register (CDAB) */
};

enum vg_archive {
    VG_ARCHIVE_NONE,
    VG_ARCHIVE_CHANGE, /* on change beyond the deadband */
    VG_ARCHIVE_CYCLIC, /* every archive_period_s seconds */
};

/* Columns of tags.csv, for per-field locations. */
enum vg_tag_col {
    VG_TAG_NAME, VG_TAG_SECTION, VG_TAG_PLC, VG_TAG_ADDRESS, VG_TAG_TYPE,
    VG_TAG_WORD_ORDER, VG_TAG_RAW_MIN, VG_TAG_RAW_MAX, VG_TAG_ENG_MIN,
    VG_TAG_ENG_MAX, VG_TAG_UNIT, VG_TAG_DEADBAND, VG_TAG_ARCHIVE,
    VG_TAG_ARCHIVE_IN, VG_TAG_WRITABLE, VG_TAG_MIN, VG_TAG_MAX, VG_TAG_DESCRIPTION,
    VG_TAG_COL_COUNT
};

struct vg_tag {
    char *name;
    struct vg_ref section;
    struct vg_ref plc;
    enum vg_reg_kind kind;
    uint32_t offset;         /* 0-based register or bit number */
    enum vg_dtype type;
    enum vg_word_order word_order;
    bool scaled;             /* raw_* and eng_* given */
    double raw_min, raw_max, eng_min, eng_max;
    char *unit;              /* may be "" */
    double deadband;         /* engineering units, >= 0 */
    enum vg_archive archive;
    unsigned archive_period_s;
    struct vg_ref archive_in; /* a project archive; name NULL: the default */
    bool writable;
    bool has_limits;         /* min/max given (required when writable numeric) */
    double min, max;         /* engineering units */
    struct vg_text description;
    struct vg_loc loc;                     /* the row */
    struct vg_loc col[VG_TAG_COL_COUNT];   /* each field */
};

enum vg_alarm_kind {
    VG_ALARM_HIGH,
    VG_ALARM_HIGH_HIGH,
    VG_ALARM_LOW,
    VG_ALARM_LOW_LOW,
    VG_ALARM_DIGITAL_ON,  /* active while the bool tag is 1 */
    VG_ALARM_DIGITAL_OFF, /* active while the bool tag is 0 */
    VG_ALARM_DEVIATION,   /* |tag - reference| > limit */
};

enum vg_priority {
    VG_PRIO_CRITICAL = 1,
    VG_PRIO_HIGH = 2,
    VG_PRIO_MEDIUM = 3,
    VG_PRIO_LOW = 4,
};

enum vg_alarm_col {
    VG_ALARM_COL_NAME, VG_ALARM_COL_TAG, VG_ALARM_COL_KIND,
    VG_ALARM_COL_LIMIT, VG_ALARM_COL_HYSTERESIS, VG_ALARM_COL_ON_DELAY,
    VG_ALARM_COL_OFF_DELAY, VG_ALARM_COL_PRIORITY, VG_ALARM_COL_SECTION,
    VG_ALARM_COL_REFERENCE, VG_ALARM_COL_MESSAGE,
    VG_ALARM_COL_COUNT
};

struct vg_alarm {
    char *name;
    struct vg_ref tag;
    enum vg_alarm_kind kind;
    bool has_limit;
    double limit;            /* engineering units; deviation: allowed |diff| */
    double hysteresis;       /* >= 0 */
    unsigned on_delay_ms;
    unsigned off_delay_ms;
    enum vg_priority priority;
    struct vg_ref section;   /* name NULL: the tag's section */
    struct vg_ref reference; /* deviation only: the reference tag */
    struct vg_text message;
    struct vg_loc loc;
    struct vg_loc col[VG_ALARM_COL_COUNT];
};

enum vg_obj_type {
    VG_OBJ_TEXT, VG_OBJ_VALUE, VG_OBJ_BAR, VG_OBJ_LAMP, VG_OBJ_BUTTON,
    VG_OBJ_SETPOINT, VG_OBJ_TREND, VG_OBJ_ALARM_LIST, VG_OBJ_RECT,
    VG_OBJ_LINE, VG_OBJ_POLYLINE, VG_OBJ_PIPE, VG_OBJ_TANK,
    VG_OBJ_TYPE_COUNT
};

enum vg_button_action {
    VG_ACTION_NONE,
    VG_ACTION_WRITE, /* write write_value to tag */
    VG_ACTION_GOTO,  /* show screen target */
};

struct vg_point {
    int x, y;
};

/* One screen object. Which fields mean something depends on TYPE (see
 * FORMAT.md); the others stay zero / NULL. Colours are 0xRRGGBB. */
struct vg_screen_object {
    enum vg_obj_type type;
    int x, y, w, h;
    struct vg_text text;      /* text; button label */
    struct vg_ref tag;        /* value, bar, lamp, setpoint, tank, pipe, button write */
    char *format;             /* value, setpoint: printf format, e.g. "%.1f" */
    bool show_unit;
    bool has_range;
    double min, max;          /* bar, tank: scale (default: the tag's range) */
    bool vertical;            /* bar */
    uint32_t color;           /* text, line, lamp "on" */
    uint32_t off_color;       /* lamp "off" */
    bool has_fill;
    uint32_t fill;            /* rect, tank */
    bool has_stroke;
    uint32_t stroke;          /* rect, tank, pipe */
    double font_size;         /* text, value */
    double line_width;        /* line, polyline, pipe */
    struct vg_point *points;  /* line, polyline, pipe */
    size_t n_points;
    enum vg_button_action action;
    double write_value;
    struct vg_ref target;     /* goto screen */
    struct vg_ref *tags;      /* trend */
    size_t n_tags;
    unsigned span_s;          /* trend */
    struct vg_ref *sections;  /* alarm_list filter (none: all) */
    size_t n_sections;
    int max_priority;         /* alarm_list: show priorities 1..max (0: all) */
    struct vg_loc loc;
};

struct vg_screen {
    char *name;               /* file name without .yaml */
    struct vg_text title;
    int width, height;
    uint32_t background;
    struct vg_ref section;    /* optional: whose permissions apply */
    struct vg_screen_object *objects;
    size_t n_objects;
    struct vg_loc loc;
};

enum vg_mod {
    VG_MOD_CTRL = 1,
    VG_MOD_SHIFT = 2,
    VG_MOD_ALT = 4,
    VG_MOD_SUPER = 8,
};

/* A key combination like "Ctrl+Shift+F4": modifiers plus one key name in
 * GDK spelling ("F4", "q", "Escape", "Delete"). */
struct vg_key {
    char *text;      /* as written */
    unsigned mods;   /* VG_MOD_* */
    char *key;       /* canonical key name */
    struct vg_loc loc;
};

struct vg_nav_key {
    struct vg_key key;
    struct vg_ref screen;
};

enum vg_toolbar {
    VG_TOOLBAR_NAVIGATION = 1,
    VG_TOOLBAR_ALARMS = 2,
    VG_TOOLBAR_TRENDS = 4,
    VG_TOOLBAR_REPORTS = 8,
    VG_TOOLBAR_STATUS = 16,
};

struct vg_station {
    char *name;
    struct vg_text title;
    struct vg_ref start_screen;
    struct vg_ref language;  /* a project language code */
    unsigned toolbars;       /* VG_TOOLBAR_* */
    struct vg_nav_key *nav_keys;
    size_t n_nav_keys;
    struct vg_key *blocked_keys;
    size_t n_blocked_keys;
    int width, height;
    bool fullscreen, decorated, always_on_top;
    struct vg_loc loc;
};

enum vg_function {
    VG_FN_VIEW = 1,
    VG_FN_OPERATE = 2,
    VG_FN_WRITE_SETPOINT = 4,
    VG_FN_ACKNOWLEDGE = 8,
    VG_FN_SHELVE = 16,
    VG_FN_LOAD_PROJECT = 32,
    VG_FN_MANAGE_USERS = 64,
    VG_FN_MANAGE_CLUSTER = 128,
    VG_FN_REPORTS = 256,
};

struct vg_grant {
    unsigned functions;       /* VG_FN_* */
    struct vg_ref *sections;  /* none: every section */
    size_t n_sections;
    struct vg_ref *stations;  /* none: every station */
    size_t n_stations;
    struct vg_loc loc;
};

struct vg_role {
    char *name;
    struct vg_text title;
    struct vg_grant *grants;
    size_t n_grants;
    struct vg_loc loc;
};

enum vg_report_kind {
    VG_REPORT_ALARMS,
    VG_REPORT_TAGS,
    VG_REPORT_AUDIT,
};

struct vg_report {
    char *name;
    struct vg_text title;
    enum vg_report_kind kind;
    struct vg_ref *tags;      /* tags reports */
    size_t n_tags;
    struct vg_ref *sections;  /* filter (none: all) */
    size_t n_sections;
    unsigned range_s;         /* default time range, e.g. 86400 */
    bool pdf;                 /* default format pdf (else csv) */
    struct vg_loc loc;
};

/* A process-value archive (project.yaml "archives"): tags name it in their
 * archive_in column, and what it holds is kept for its retention. */
struct vg_archive_def {
    char *name;
    struct vg_text title;
    uint64_t retention_ms;    /* 0: kept forever */
    bool is_default;          /* holds the tags that name no archive */
    struct vg_loc loc;
};

struct vg_project {
    char *name;
    char *label;              /* the engineer's version text */
    struct vg_text title;
    char *languages[VG_PROJECT_MAX_LANGS];
    size_t n_languages;
    struct vg_section *sections;  size_t n_sections;
    struct vg_plc *plcs;          size_t n_plcs;
    struct vg_tag *tags;          size_t n_tags;
    struct vg_alarm *alarms;      size_t n_alarms;
    struct vg_screen *screens;    size_t n_screens;
    struct vg_station *stations;  size_t n_stations;
    struct vg_role *roles;        size_t n_roles;
    struct vg_report *reports;    size_t n_reports;
    struct vg_archive_def *archives; size_t n_archives;
    /* project.yaml "retention": how long the alarm journal and the audit
     * trail keep their records; 0 keeps them forever (the default). */
    uint64_t journal_retention_ms;
    uint64_t audit_retention_ms;
    char **file_names;            /* owned: what every vg_loc.file points at */
    size_t n_file_names;
    void *index;                  /* private: name lookups */
};

/* Parse and validate the files of one project. Returns NULL only when out of
 * memory; otherwise a project, and every problem found in D (D->n == 0 means
 * the project is valid). */
struct vg_project *vg_project_parse(const struct vg_project_files *fs,
                                    struct vg_diags *d);

void vg_project_free(struct vg_project *p);

/* Index of the object called NAME, or -1. Valid after vg_project_parse. */
int vg_project_find_tag(const struct vg_project *p, const char *name);
int vg_project_find_section(const struct vg_project *p, const char *name);
int vg_project_find_screen(const struct vg_project *p, const char *name);
int vg_project_find_station(const struct vg_project *p, const char *name);
int vg_project_find_archive(const struct vg_project *p, const char *name);

/* The archive tag T is stored in: the one it names, else the project's
 * default archive, else NULL (the cluster's own retention applies). */
const struct vg_archive_def *vg_tag_archive(const struct vg_project *p,
                                            const struct vg_tag *t);

/* Index of language CODE in p->languages, or -1. */
int vg_project_language(const struct vg_project *p, const char *code);

/* Names for enums, as written in the files. */
const char *vg_reg_kind_name(enum vg_reg_kind k);
const char *vg_dtype_name(enum vg_dtype t);
const char *vg_alarm_kind_name(enum vg_alarm_kind k);
const char *vg_priority_name(enum vg_priority p);
const char *vg_obj_type_name(enum vg_obj_type t);
/* Number of 16-bit registers (or bits for coils/inputs) a tag occupies. */
unsigned vg_dtype_width(enum vg_dtype t);

/* What type T can hold (float32: +-FLT_MAX). */
void vg_dtype_range(enum vg_dtype t, double *lo, double *hi);

/* The range a tag's engineering value can take: eng_min..eng_max when it is
 * scaled, otherwise what its type can hold. */
void vg_tag_range(const struct vg_tag *t, double *lo, double *hi);

/* The number format of a value or setpoint object (FORMAT.md): exactly one
 * conversion "%" [flags "-+ 0#"] [width, up to 2 digits] ["." precision, up
 * to 2 digits] and f, e, g or d; "%%" is literal text; at most 32
 * characters. Validation applies it, and so does the station before the
 * format reaches snprintf. True when F follows the rule; then the
 * conversion is F[*START, *END) and *LETTER its letter (any pointer may be
 * NULL). */
bool vg_value_format_parse(const char *f, size_t *start, size_t *end,
                           char *letter);

/* A readable summary of what changed from OLD to NEW (sections, PLCs, tags,
 * alarms, screens, stations, roles, reports: added, removed, changed with the
 * fields that differ). *TEXT is malloc'd; "no differences" when equal. */
int vg_project_diff(const struct vg_project *old_p,
                    const struct vg_project *new_p, char **text);

#endif /* VG_PROJECT_H */
