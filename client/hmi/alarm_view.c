/* vigil-hmi: the alarm view (hmi.h) — a notebook with two pages.
 *
 * "Current alarms" lists the station's model (h->alarm_rows, kept up to date by
 * station.c from the alarms subscription), filtered by section, priority
 * and state, sorted unacknowledged first, then by priority, then newest
 * first, and coloured like render.h's alarm lists. The operator acts on the
 * selection: acknowledge (alarm_ack "alarms"), acknowledge everything in
 * the section filter (alarm_ack "sections", or "all" when the filter is
 * "all"; after a confirmation), shelve with a reason and a duration
 * (alarm_shelve per alarm) and unshelve (alarm_unshelve per alarm). What
 * the cluster answered goes into a status line and into the station's
 * notes ("last_ack", "last_shelve") for tests and support; a refusal or a
 * transport failure also into an error dialog. The list itself changes only
 * when the cluster pushes the committed change, never optimistically.
 *
 * "Journal" pages through alarm_journal (newest first, 500 a page; "Older"
 * asks for the entries before the last one shown).
 *
 * Lifetime: a project reload destroys this widget and builds a new one, so
 * answers may arrive for a view that is gone. Every request holds a
 * reference on the root widget (which keeps the view's struct, freed when
 * the root is finalized) and checks the DESTROYED flag before touching a
 * widget. The modal dialogs run nested main loops, during which the same
 * can happen, so the flag is checked after each of them too.
 *
 * Read queries (alarm_journal) go out with hmi_net_request, not
 * hmi_request: the node refuses members it does not know, and hmi_request
 * adds "user" and "station". */
#include "hmi.h"

#include <gdk/gdkx.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/proto.h"

#define JOURNAL_PAGE 500
#define SHELVE_REASON_MAX 127 /* bytes, MESSAGES.md alarm_shelve */

enum {
    C_NAME, C_TIME, C_PRIO, C_SECTION, C_MESSAGE, C_STATE, C_TAG, C_TOOLTIP,
    C_BG, C_FG, C_WEIGHT, C_STYLE, C_SHELVED, C_N
};

enum {
    J_TIME, J_ALARM, J_CAUSE, J_CHANGE, J_USER, J_STATION, J_MESSAGE, J_N
};

enum state_filter { ST_ALL, ST_UNACK, ST_ACK, ST_SUPPRESSED };

struct alarm_view {
    struct hmi *h;
    GtkWidget *root; /* the notebook; owns this struct (see view_free) */
    bool destroyed;

    /* Current alarms. */
    GtkListStore *store;
    GtkWidget *tree;
    GtkTreeSelection *sel;
    GtkWidget *section, *prio, *state;
    GtkWidget *ack, *ack_section, *shelve, *unshelve;
    GtkWidget *count, *status;
    bool refilling; /* selection changes made by refill() itself */
    bool stale;     /* the alarms changed while the list was not shown */
    bool filling;   /* section combos being filled: no refill, no refresh */

    /* Journal. */
    GtkListStore *jstore;
    GtkWidget *jrange, *jsection, *jprio, *jrefresh, *jolder, *jstatus;
    unsigned jgen;     /* answers to older requests are dropped */
    bool jloaded;      /* refreshed at least once */
    bool jbusy;
    /* The filter of the rows shown, which "Older" continues. */
    long long jfrom_ms;
    char *jsection_name;
    int jmax_prio;
    long long jlast_id;
    size_t jrows;
};

/* -------------------------------------------------------------- lifetime */

static void view_free(gpointer p)
{
    struct alarm_view *v = p;
    g_object_unref(v->store);
    g_object_unref(v->jstore);
    g_free(v->jsection_name);
    g_free(v);
}

static void on_destroy(GtkWidget *w, gpointer p)
{
    struct alarm_view *v = p;
    (void)w;
    v->destroyed = true;
}

static struct alarm_view *view_of(GtkWidget *root)
{
    return root != NULL ? g_object_get_data(G_OBJECT(root), "hmi-alarm-view") : NULL;
}

/* A reference for a request in flight; drop it with g_object_unref(v->root)
 * as the last thing the callback does (it may free V). */
static struct alarm_view *hold(struct alarm_view *v)
{
    g_object_ref(v->root);
    return v;
}

/* ------------------------------------------------------------- wording */

/* Status names (MESSAGES.md "Alarms") as the operator reads them. */
const char *hmi_alarm_status_text(const char *status)
{
    if (status == NULL) {
        return "";
    }
    if (strcmp(status, "unack_active") == 0) {
        return _("Unacknowledged");
    }
    if (strcmp(status, "ack_active") == 0) {
        return _("Acknowledged");
    }
    if (strcmp(status, "unack_rtn") == 0) {
        return _("Returned, unacknowledged");
    }
    if (strcmp(status, "normal") == 0) {
        return _("Normal");
    }
    return status;
}

const char *hmi_alarm_cause_text(const char *cause)
{
    static const struct {
        const char *name, *text;
    } causes[] = {
        {"raised", N_("Raised")},
        {"cleared", N_("Cleared")},
        {"acked", N_("Acknowledged")},
        {"shelved", N_("Shelved")},
        {"unshelved", N_("Unshelved")},
        {"expired", N_("Shelving expired")},
        {"oos", N_("Out of service")},
        {"in_service", N_("In service")},
        {"removed", N_("Removed")},
    };
    for (size_t i = 0; cause != NULL && i < G_N_ELEMENTS(causes); i++) {
        if (strcmp(cause, causes[i].name) == 0) {
            return _(causes[i].text);
        }
    }
    return cause != NULL ? cause : "";
}

static bool unacked(const struct hmi_alarm_row *r)
{
    return r->status != NULL && strncmp(r->status, "unack_", 6) == 0;
}

static bool suppressed(const struct hmi_alarm_row *r)
{
    return r->shelved || r->out_of_service;
}

static const char *state_text(const struct hmi_alarm_row *r)
{
    if (r->out_of_service) {
        return _("Out of service");
    }
    if (r->shelved) {
        return _("Shelved");
    }
    return hmi_alarm_status_text(r->status);
}

/* The title of section NAME in the station's language, else NAME; system
 * alarms have none. */
static const char *section_text(const struct hmi *h, const char *name)
{
    int s;

    if (name == NULL || name[0] == '\0') {
        return _("System");
    }
    s = h->project != NULL ? vg_project_find_section(h->project, name) : -1;
    if (s >= 0) {
        const char *t = hmi_text(h, &h->project->sections[s].title);
        return t[0] != '\0' ? t : name;
    }
    return name;
}

/* ------------------------------------------------------------- colours */

static uint32_t mix(uint32_t a, uint32_t b, double f)
{
    uint32_t out = 0;
    for (int shift = 0; shift <= 16; shift += 8) {
        double ca = (a >> shift) & 0xff, cb = (b >> shift) & 0xff;
        out |= (uint32_t)(ca + (cb - ca) * f + 0.5) << shift;
    }
    return out;
}

/* Black on light ground, white on dark (ITU-R BT.601 luma). */
static uint32_t readable_on(uint32_t bg)
{
    double y = 0.299 * ((bg >> 16) & 0xff) + 0.587 * ((bg >> 8) & 0xff) +
               0.114 * (bg & 0xff);
    return y > 140 ? 0x000000 : 0xffffff;
}

/* Row colours: the priority's colour while the alarm is active; lighter
 * once it returned to normal (it still wants an acknowledgment but no
 * longer describes the plant); grey and italic while suppressed, so that
 * nobody reads a shelved alarm as one that annunciates. */
static void row_colors(const struct hmi_alarm_row *r, char *bg, char *fg,
                       size_t size)
{
    uint32_t b, f;

    if (suppressed(r)) {
        b = 0xd8d8d8;
        f = 0x505050;
    } else {
        b = hmi_render_priority_color(r->priority);
        if (r->status != NULL && strcmp(r->status, "unack_rtn") == 0) {
            b = mix(b, 0xffffff, 0.6);
        }
        f = readable_on(b);
    }
    snprintf(bg, size, "#%06x", (unsigned)b);
    snprintf(fg, size, "#%06x", (unsigned)f);
}

/* ------------------------------------------------------ section filters */

/* Sections in tree order, each followed by its sub-sections, indented by
 * depth. The depth bound only guards against a project whose parents form
 * a loop (validation rejects those). */
static void add_sections(GtkComboBoxText *c, const struct hmi *h, int parent,
                         int depth)
{
    const struct vg_project *p = h->project;

    if (depth > 32) {
        return;
    }
    for (size_t i = 0; i < p->n_sections; i++) {
        const struct vg_section *s = &p->sections[i];
        char label[512];
        const char *t;

        if (s->parent != parent || s->name == NULL) {
            continue;
        }
        t = hmi_text(h, &s->title);
        snprintf(label, sizeof label, "%*s%s", depth * 4, "", t[0] ? t : s->name);
        gtk_combo_box_text_append(c, s->name, label);
        add_sections(c, h, (int)i, depth + 1);
    }
}

/* Fill combo C with "all" and every section, keeping the choice when the
 * section still exists. */
static void fill_sections(struct alarm_view *v, GtkWidget *c)
{
    char *keep = g_strdup(gtk_combo_box_get_active_id(GTK_COMBO_BOX(c)));

    gtk_combo_box_text_remove_all(GTK_COMBO_BOX_TEXT(c));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(c), "", _("All sections"));
    if (v->h->project != NULL) {
        add_sections(GTK_COMBO_BOX_TEXT(c), v->h, -1, 0);
    }
    if (keep == NULL || !gtk_combo_box_set_active_id(GTK_COMBO_BOX(c), keep)) {
        gtk_combo_box_set_active_id(GTK_COMBO_BOX(c), "");
    }
    g_free(keep);
}

/* The section chosen in C, NULL for all. Borrowed from the combo. */
static const char *chosen_section(GtkWidget *c)
{
    const char *id = gtk_combo_box_get_active_id(GTK_COMBO_BOX(c));
    return id != NULL && id[0] != '\0' ? id : NULL;
}

static GtkWidget *priority_combo(void)
{
    GtkWidget *c = gtk_combo_box_text_new();
    /* "Up to 4" would be the same as all priorities. */
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(c), "0", _("All priorities"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(c), "1", _("Priority 1 only"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(c), "2", _("Priorities 1 and 2"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(c), "3", _("Priorities 1 to 3"));
    gtk_combo_box_set_active(GTK_COMBO_BOX(c), 0);
    return c;
}

static int chosen_priority(GtkWidget *c)
{
    const char *id = gtk_combo_box_get_active_id(GTK_COMBO_BOX(c));
    return id != NULL ? atoi(id) : 0;
}

/* Whether section NAME is section WANT or lies below it. System alarms
 * (no section) belong to every filter, as in alarms_list and on screens:
 * they concern the whole plant. */
static bool in_section(const struct vg_project *p, const char *name, int want)
{
    int s;

    if (want < 0 || name == NULL || name[0] == '\0') {
        return true;
    }
    s = vg_project_find_section(p, name);
    for (size_t steps = 0; s >= 0 && (size_t)s < p->n_sections && steps <= p->n_sections;
         steps++) {
        if (s == want) {
            return true;
        }
        s = p->sections[s].parent;
    }
    return false;
}

/* ------------------------------------------------------- current alarms */

static int cmp_alarm(const void *pa, const void *pb)
{
    const struct hmi_alarm_row *a = *(const struct hmi_alarm_row *const *)pa;
    const struct hmi_alarm_row *b = *(const struct hmi_alarm_row *const *)pb;
    bool ua = unacked(a) && !suppressed(a), ub = unacked(b) && !suppressed(b);

    if (ua != ub) {
        return ua ? -1 : 1;
    }
    if (a->priority != b->priority) {
        return a->priority < b->priority ? -1 : 1;
    }
    if (a->changed_ms != b->changed_ms) {
        return a->changed_ms > b->changed_ms ? -1 : 1;
    }
    return strcmp(a->alarm ? a->alarm : "", b->alarm ? b->alarm : "");
}

static bool visible(struct alarm_view *v, const struct hmi_alarm_row *r, int section,
                    int max_prio, int state)
{
    if (v->h->project != NULL && !in_section(v->h->project, r->section, section)) {
        return false;
    }
    if (max_prio > 0 && r->priority > max_prio) {
        return false;
    }
    switch (state) {
    case ST_UNACK:
        return unacked(r) && !suppressed(r);
    case ST_ACK:
        return r->status != NULL && strcmp(r->status, "ack_active") == 0 &&
               !suppressed(r);
    case ST_SUPPRESSED:
        return suppressed(r);
    default:
        return true;
    }
}

static GHashTable *selected_names(struct alarm_view *v)
{
    GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GtkTreeModel *m;
    GList *rows = gtk_tree_selection_get_selected_rows(v->sel, &m);

    for (GList *l = rows; l != NULL; l = l->next) {
        GtkTreeIter it;
        char *name = NULL;
        if (gtk_tree_model_get_iter(m, &it, l->data)) {
            gtk_tree_model_get(m, &it, C_NAME, &name, -1);
            if (name != NULL) {
                g_hash_table_add(set, name);
            }
        }
    }
    g_list_free_full(rows, (GDestroyNotify)gtk_tree_path_free);
    return set;
}

/* The selected alarms as a JSON array of names; with ONLY_SHELVED just
 * those that are shelved. */
static json_t *selection_array(struct alarm_view *v, bool only_shelved)
{
    json_t *names = json_array();
    GtkTreeModel *m;
    GList *rows = gtk_tree_selection_get_selected_rows(v->sel, &m);

    for (GList *l = rows; l != NULL; l = l->next) {
        GtkTreeIter it;
        char *name = NULL;
        gboolean shelved = FALSE;
        if (!gtk_tree_model_get_iter(m, &it, l->data)) {
            continue;
        }
        gtk_tree_model_get(m, &it, C_NAME, &name, C_SHELVED, &shelved, -1);
        if (name != NULL && name[0] != '\0' && (!only_shelved || shelved)) {
            json_array_append_new(names, json_string(name));
        }
        g_free(name);
    }
    g_list_free_full(rows, (GDestroyNotify)gtk_tree_path_free);
    return names;
}

static void update_buttons(struct alarm_view *v)
{
    bool any = gtk_tree_selection_count_selected_rows(v->sel) > 0;
    gtk_widget_set_sensitive(v->ack, any);
    gtk_widget_set_sensitive(v->shelve, any);
    gtk_widget_set_sensitive(v->unshelve, any);
}

static void set_row(struct alarm_view *v, GtkTreeIter *it, const struct hmi_alarm_row *r)
{
    /* The row view has no tag; its entry, at the same index, has. */
    json_t *entry = v->h->alarm_entries[r - v->h->alarm_rows];
    char time[64], prio[16], bg[16], fg[16];
    char *tip = g_markup_escape_text(r->alarm ? r->alarm : "", -1);

    hmi_time_text(r->changed_ms, time, sizeof time);
    snprintf(prio, sizeof prio, "%d", r->priority);
    row_colors(r, bg, fg, sizeof bg);
    gtk_list_store_set(v->store, it,
                       C_NAME, r->alarm ? r->alarm : "",
                       C_TIME, time,
                       C_PRIO, prio,
                       C_SECTION, section_text(v->h, r->section),
                       C_MESSAGE, r->message ? r->message : "",
                       C_STATE, state_text(r),
                       C_TAG, vg_proto_get_str(entry, "tag", ""),
                       C_TOOLTIP, tip,
                       C_BG, bg,
                       C_FG, fg,
                       C_WEIGHT, unacked(r) && !suppressed(r) ? PANGO_WEIGHT_BOLD
                                                              : PANGO_WEIGHT_NORMAL,
                       C_STYLE, suppressed(r) ? PANGO_STYLE_ITALIC : PANGO_STYLE_NORMAL,
                       C_SHELVED, (gboolean)r->shelved,
                       -1);
    g_free(tip);
}

/* Show the filtered, sorted alarms. Rows are overwritten in place and only
 * the surplus is appended or removed, so that the list does not jump back
 * to the top on every change; the selection follows the alarm names. */
static void refill(struct alarm_view *v)
{
    struct hmi *h = v->h;
    const char *sec_name = chosen_section(v->section);
    int section = sec_name != NULL && h->project != NULL
                      ? vg_project_find_section(h->project, sec_name)
                      : -1;
    int max_prio = chosen_priority(v->prio);
    int state = gtk_combo_box_get_active(GTK_COMBO_BOX(v->state));
    const struct hmi_alarm_row **list = g_new(const struct hmi_alarm_row *, h->n_alarms + 1);
    GHashTable *keep = selected_names(v);
    GtkTreeModel *m = GTK_TREE_MODEL(v->store);
    GtkTreeIter it;
    gboolean have;
    size_t n = 0, unack = 0;
    char text[256];

    for (size_t i = 0; i < h->n_alarms; i++) {
        if (visible(v, &h->alarm_rows[i], section, max_prio, state)) {
            list[n++] = &h->alarm_rows[i];
        }
        if (unacked(&h->alarm_rows[i]) && !suppressed(&h->alarm_rows[i])) {
            unack++;
        }
    }
    qsort(list, n, sizeof *list, cmp_alarm);

    v->refilling = true;
    gtk_tree_selection_unselect_all(v->sel);
    have = gtk_tree_model_get_iter_first(m, &it);
    for (size_t i = 0; i < n; i++) {
        if (!have) {
            gtk_list_store_append(v->store, &it);
        }
        set_row(v, &it, list[i]);
        if (list[i]->alarm != NULL && g_hash_table_contains(keep, list[i]->alarm)) {
            gtk_tree_selection_select_iter(v->sel, &it);
        }
        have = have ? gtk_tree_model_iter_next(m, &it) : FALSE;
    }
    while (have) {
        have = gtk_list_store_remove(v->store, &it);
    }
    v->refilling = false;
    v->stale = false;

    snprintf(text, sizeof text, _("%zu of %zu alarms shown, %zu unacknowledged"), n,
             h->n_alarms, unack);
    gtk_label_set_text(GTK_LABEL(v->count), text);
    update_buttons(v);
    g_hash_table_unref(keep);
    g_free(list);
}

static void on_filter_changed(GtkComboBox *c, gpointer p)
{
    struct alarm_view *v = p;
    (void)c;
    if (!v->filling) {
        refill(v);
    }
}

static void on_list_map(GtkWidget *w, gpointer p)
{
    struct alarm_view *v = p;
    (void)w;
    if (v->stale) {
        refill(v);
    }
}

static void on_selection_changed(GtkTreeSelection *s, gpointer p)
{
    struct alarm_view *v = p;
    (void)s;
    if (!v->refilling) {
        update_buttons(v);
    }
}

/* -------------------------------------------------------------- answers */

/* NAMES (a JSON array of strings, or of objects with "alarm") joined with
 * ", " into a new string; "-" when empty. */
static char *join_names(json_t *names)
{
    GString *s = g_string_new("");
    json_t *e;
    size_t i;

    json_array_foreach(names, i, e) {
        const char *n = json_is_string(e) ? json_string_value(e)
                                          : vg_proto_get_str(e, "alarm", NULL);
        if (n != NULL) {
            g_string_append_printf(s, "%s%s", s->len ? ", " : "", n);
        }
    }
    if (s->len == 0) {
        g_string_append(s, "-");
    }
    return g_string_free(s, FALSE);
}

/* The sentence of an error answer ("message (code)"), or NULL when ANSWER
 * is not one. */
static char *error_text(json_t *answer)
{
    if (strcmp(vg_proto_get_str(answer, "type", ""), "error") != 0) {
        return NULL;
    }
    return g_strdup_printf("%s (%s)", vg_proto_get_str(answer, "message", "?"),
                           vg_proto_get_str(answer, "code", "?"));
}

static void ack_done(json_t *answer, const char *errmsg, void *ud)
{
    struct alarm_view *v = ud;
    struct hmi *h = v->h;
    char *err = answer == NULL ? g_strdup(errmsg) : error_text(answer);

    /* The note is made even when the view was rebuilt meanwhile: what the
     * operator did happened all the same. */
    if (err != NULL) {
        hmi_note(h, "last_ack", "failed: %s", err);
    } else {
        char *a = join_names(json_object_get(answer, "acked"));
        char *u = join_names(json_object_get(answer, "unchanged"));
        char *k = join_names(json_object_get(answer, "unknown"));
        hmi_note(h, "last_ack", "acked: %s; unchanged: %s; unknown: %s", a, u, k);
        g_free(a);
        g_free(u);
        g_free(k);
    }
    if (!v->destroyed) {
        if (err != NULL) {
            char *text = g_strdup_printf(_("Not acknowledged: %s"), err);
            gtk_label_set_text(GTK_LABEL(v->status), text);
            g_free(text);
            hmi_error(h, _("The alarms were not acknowledged"), err);
        } else {
            json_t *unchanged = json_object_get(answer, "unchanged");
            json_t *unknown = json_object_get(answer, "unknown");
            GString *text = g_string_new("");

            g_string_append_printf(text, _("%zu acknowledged"),
                                   json_array_size(json_object_get(answer, "acked")));
            if (json_array_size(unchanged) > 0) {
                g_string_append(text, ", ");
                g_string_append_printf(text, _("%zu unchanged"),
                                       json_array_size(unchanged));
            }
            if (json_array_size(unknown) > 0) {
                g_string_append(text, ", ");
                g_string_append_printf(text, _("%zu unknown"), json_array_size(unknown));
            }
            gtk_label_set_text(GTK_LABEL(v->status), text->str);
            g_string_free(text, TRUE);
        }
    }
    g_free(err);
    json_decref(answer);
    g_object_unref(v->root);
}

static void send_ack(struct alarm_view *v, json_t *req, const char *what)
{
    gtk_label_set_text(GTK_LABEL(v->status), _("Acknowledging…"));
    hmi_note(v->h, "last_ack", "sent: %s", what);
    hmi_request(v->h, req, ack_done, hold(v));
}

static void on_ack(GtkButton *b, gpointer p)
{
    struct alarm_view *v = p;
    json_t *names = selection_array(v, false);
    json_t *req;
    char *what;

    (void)b;
    if (json_array_size(names) == 0) {
        json_decref(names);
        gtk_label_set_text(GTK_LABEL(v->status), _("Select the alarms to acknowledge."));
        return;
    }
    what = join_names(names);
    req = vg_proto_request("alarm_ack", -1);
    json_object_set_new(req, "alarms", names);
    send_ack(v, req, what);
    g_free(what);
}

/* Ask QUESTION with a cancel and an OK button labelled OK_LABEL. Runs a
 * nested main loop: the caller checks v->destroyed afterwards. */
static bool confirm(struct alarm_view *v, const char *question, const char *ok_label)
{
    GtkWidget *d = gtk_message_dialog_new(GTK_WINDOW(v->h->window),
                                          GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                          GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE, "%s",
                                          question);
    int r;

    gtk_dialog_add_buttons(GTK_DIALOG(d), _("_Cancel"), GTK_RESPONSE_CANCEL, ok_label,
                           GTK_RESPONSE_OK, NULL);
    /* Enter confirms, as everywhere in the station: the question itself is
     * the safeguard. */
    gtk_dialog_set_default_response(GTK_DIALOG(d), GTK_RESPONSE_OK);
    /* The dialog may be destroyed while it runs (the window closes): keep
     * it alive until we are done with it. */
    g_object_ref(d);
    hmi_dialog_note(v->h, "confirm", d);
    r = gtk_dialog_run(GTK_DIALOG(d));
    hmi_dialog_note(v->h, NULL, NULL);
    gtk_widget_destroy(d);
    g_object_unref(d);
    return r == GTK_RESPONSE_OK;
}

static void on_ack_section(GtkButton *b, gpointer p)
{
    struct alarm_view *v = hold(p);
    const char *sec = chosen_section(v->section);
    char *name = g_strdup(sec);
    char *question;
    bool ok;

    (void)b;
    if (name != NULL) {
        question = g_strdup_printf(_("Acknowledge every unacknowledged alarm in "
                                     "\"%s\" and its sub-sections?"),
                                   section_text(v->h, name));
    } else {
        question = g_strdup(_("Acknowledge every unacknowledged alarm of the plant, "
                              "system alarms included?"));
    }
    ok = confirm(v, question, _("_Acknowledge"));
    if (ok && !v->destroyed) {
        json_t *req = vg_proto_request("alarm_ack", -1);
        char *what;
        if (name != NULL) {
            json_object_set_new(req, "sections", json_pack("[s]", name));
            what = g_strdup_printf("section %s", name);
        } else {
            json_object_set_new(req, "all", json_true());
            what = g_strdup("all");
        }
        send_ack(v, req, what);
        g_free(what);
    }
    g_free(question);
    g_free(name);
    g_object_unref(v->root);
}

/* ------------------------------------------------------ shelve, unshelve */

/* Several one-alarm requests (alarm_shelve, alarm_unshelve) whose answers
 * are summed up when the last one is in. */
struct batch {
    struct alarm_view *v; /* held */
    bool shelve;
    size_t pending;
    json_t *changed, *unchanged, *failed; /* names; failed: {"alarm","error"} */
};

static void batch_finish(struct batch *b)
{
    struct alarm_view *v = b->v;
    struct hmi *h = v->h;
    char *c = join_names(b->changed), *u = join_names(b->unchanged),
         *f = join_names(b->failed);

    hmi_note(h, "last_shelve", "%s: %s; unchanged: %s; failed: %s",
             b->shelve ? "shelved" : "unshelved", c, u, f);
    if (!v->destroyed) {
        GString *text = g_string_new("");

        g_string_append_printf(text, b->shelve ? _("%zu shelved") : _("%zu unshelved"),
                               json_array_size(b->changed));
        if (json_array_size(b->unchanged) > 0) {
            g_string_append(text, ", ");
            g_string_append_printf(text, _("%zu unchanged"), json_array_size(b->unchanged));
        }
        if (json_array_size(b->failed) > 0) {
            g_string_append(text, ", ");
            g_string_append_printf(text, _("%zu failed"), json_array_size(b->failed));
        }
        gtk_label_set_text(GTK_LABEL(v->status), text->str);
        if (json_array_size(b->failed) > 0) {
            json_t *first = json_array_get(b->failed, 0);
            char *msg = g_strdup_printf("%s: %s", vg_proto_get_str(first, "alarm", "?"),
                                        vg_proto_get_str(first, "error", "?"));
            hmi_error(h, b->shelve ? _("Shelving failed") : _("Unshelving failed"), msg);
            g_free(msg);
        }
        g_string_free(text, TRUE);
    }
    g_free(c);
    g_free(u);
    g_free(f);
    json_decref(b->changed);
    json_decref(b->unchanged);
    json_decref(b->failed);
    g_object_unref(v->root);
    g_free(b);
}

/* The answer to one request of a batch. Each carries its alarm's name in
 * a struct of its own, since a transport failure answers nothing. */
struct batch_item {
    struct batch *b;
    char *alarm;
};

static void batch_item_done(json_t *answer, const char *errmsg, void *ud)
{
    struct batch_item *it = ud;
    struct batch *b = it->b;
    char *err = answer == NULL ? g_strdup(errmsg) : error_text(answer);

    if (err != NULL) {
        json_array_append_new(b->failed,
                              json_pack("{s:s, s:s}", "alarm", it->alarm, "error", err));
    } else if (json_is_false(json_object_get(answer, "changed"))) {
        json_array_append_new(b->unchanged, json_string(it->alarm));
    } else {
        json_array_append_new(b->changed, json_string(it->alarm));
    }
    g_free(err);
    json_decref(answer);
    g_free(it->alarm);
    g_free(it);
    if (--b->pending == 0) {
        batch_finish(b);
    }
}

/* Send REQ (a template, borrowed) once per name in NAMES with "alarm" set. */
static void send_batch(struct alarm_view *v, bool shelve, json_t *names, json_t *req)
{
    struct batch *b = g_new0(struct batch, 1);
    json_t *e;
    size_t i;

    b->v = hold(v);
    b->shelve = shelve;
    b->changed = json_array();
    b->unchanged = json_array();
    b->failed = json_array();
    b->pending = json_array_size(names);
    gtk_label_set_text(GTK_LABEL(v->status), shelve ? _("Shelving…") : _("Unshelving…"));
    json_array_foreach(names, i, e) {
        struct batch_item *it = g_new0(struct batch_item, 1);
        json_t *r = json_deep_copy(req);
        it->b = b;
        it->alarm = g_strdup(json_string_value(e));
        json_object_set(r, "alarm", e);
        hmi_request(v->h, r, batch_item_done, it);
    }
}

struct shelve_dialog {
    GtkWidget *dialog, *reason, *duration, *minutes, *hint;
};

static void on_duration_changed(GtkComboBox *c, gpointer p)
{
    struct shelve_dialog *d = p;
    const char *id = gtk_combo_box_get_active_id(c);
    gtk_widget_set_sensitive(d->minutes, id != NULL && strcmp(id, "custom") == 0);
}

/* Ask for the reason and duration of shelving N alarms. Runs a nested main
 * loop: the caller checks v->destroyed afterwards. */
static bool ask_shelve(struct alarm_view *v, size_t n, char **reason, unsigned *duration_s)
{
    struct shelve_dialog d;
    GtkWidget *area, *grid, *label;
    char *text;
    bool ok = false;

    d.dialog = gtk_dialog_new_with_buttons(_("Shelve alarms"), GTK_WINDOW(v->h->window),
                                           GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                           _("_Cancel"), GTK_RESPONSE_CANCEL,
                                           _("_Shelve"), GTK_RESPONSE_OK, NULL);
    gtk_dialog_set_default_response(GTK_DIALOG(d.dialog), GTK_RESPONSE_OK);
    area = gtk_dialog_get_content_area(GTK_DIALOG(d.dialog));
    grid = gtk_grid_new();
    gtk_grid_set_row_spacing(GTK_GRID(grid), 6);
    gtk_grid_set_column_spacing(GTK_GRID(grid), 8);
    gtk_container_set_border_width(GTK_CONTAINER(grid), 12);

    text = g_strdup_printf(ngettext("Shelve %zu alarm: it will not annunciate until "
                                    "the time is up or it is unshelved.",
                                    "Shelve %zu alarms: they will not annunciate until "
                                    "the time is up or they are unshelved.",
                                    n),
                           n);
    label = gtk_label_new(text);
    gtk_label_set_line_wrap(GTK_LABEL(label), TRUE);
    gtk_label_set_xalign(GTK_LABEL(label), 0);
    g_free(text);
    gtk_grid_attach(GTK_GRID(grid), label, 0, 0, 2, 1);

    gtk_grid_attach(GTK_GRID(grid), gtk_label_new(_("Reason")), 0, 1, 1, 1);
    d.reason = gtk_entry_new();
    gtk_entry_set_max_length(GTK_ENTRY(d.reason), SHELVE_REASON_MAX);
    gtk_entry_set_activates_default(GTK_ENTRY(d.reason), TRUE);
    gtk_widget_set_hexpand(d.reason, TRUE);
    gtk_grid_attach(GTK_GRID(grid), d.reason, 1, 1, 1, 1);

    gtk_grid_attach(GTK_GRID(grid), gtk_label_new(_("Duration")), 0, 2, 1, 1);
    d.duration = gtk_combo_box_text_new();
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(d.duration), "900", _("15 minutes"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(d.duration), "3600", _("1 hour"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(d.duration), "28800", _("8 hours"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(d.duration), "86400", _("24 hours"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(d.duration), "custom", _("Other…"));
    gtk_combo_box_set_active(GTK_COMBO_BOX(d.duration), 1);
    gtk_grid_attach(GTK_GRID(grid), d.duration, 1, 2, 1, 1);

    gtk_grid_attach(GTK_GRID(grid), gtk_label_new(_("Minutes")), 0, 3, 1, 1);
    /* 1 minute .. 30 days, the cluster's limits. */
    d.minutes = gtk_spin_button_new_with_range(1, 30 * 24 * 60, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(d.minutes), 60);
    gtk_widget_set_sensitive(d.minutes, FALSE);
    gtk_grid_attach(GTK_GRID(grid), d.minutes, 1, 3, 1, 1);
    g_signal_connect(d.duration, "changed", G_CALLBACK(on_duration_changed), &d);

    d.hint = gtk_label_new("");
    gtk_label_set_xalign(GTK_LABEL(d.hint), 0);
    gtk_grid_attach(GTK_GRID(grid), d.hint, 0, 4, 2, 1);
    gtk_box_pack_start(GTK_BOX(area), grid, TRUE, TRUE, 0);
    gtk_widget_show_all(d.dialog);

    g_object_ref(d.dialog);
    hmi_dialog_note(v->h, "shelve", d.dialog);
    for (;;) {
        int r = gtk_dialog_run(GTK_DIALOG(d.dialog));
        const char *id;
        char *why;

        if (r != GTK_RESPONSE_OK || v->destroyed) {
            break;
        }
        why = g_strstrip(g_strdup(gtk_entry_get_text(GTK_ENTRY(d.reason))));
        if (why[0] == '\0') {
            gtk_label_set_text(GTK_LABEL(d.hint), _("Give a reason."));
            g_free(why);
            continue;
        }
        if (strlen(why) > SHELVE_REASON_MAX) {
            gtk_label_set_text(GTK_LABEL(d.hint), _("The reason is too long."));
            g_free(why);
            continue;
        }
        id = gtk_combo_box_get_active_id(GTK_COMBO_BOX(d.duration));
        if (id == NULL || strcmp(id, "custom") == 0) {
            gtk_spin_button_update(GTK_SPIN_BUTTON(d.minutes));
            *duration_s = 60u * (unsigned)gtk_spin_button_get_value_as_int(
                                    GTK_SPIN_BUTTON(d.minutes));
        } else {
            *duration_s = (unsigned)atoi(id);
        }
        *reason = why;
        ok = true;
        break;
    }
    hmi_dialog_note(v->h, NULL, NULL);
    gtk_widget_destroy(d.dialog);
    g_object_unref(d.dialog);
    return ok;
}

static void on_shelve(GtkButton *button, gpointer p)
{
    struct alarm_view *v = hold(p);
    /* Taken before the dialog: the list may change while it is open. */
    json_t *names = selection_array(v, false);
    char *reason = NULL;
    unsigned duration_s = 0;

    (void)button;
    if (json_array_size(names) == 0) {
        gtk_label_set_text(GTK_LABEL(v->status), _("Select the alarms to shelve."));
    } else if (ask_shelve(v, json_array_size(names), &reason, &duration_s) &&
               !v->destroyed) {
        json_t *req = vg_proto_request("alarm_shelve", -1);
        json_object_set_new(req, "duration_s", json_integer(duration_s));
        json_object_set_new(req, "reason", json_string(reason));
        send_batch(v, true, names, req);
        json_decref(req);
    }
    g_free(reason);
    json_decref(names);
    g_object_unref(v->root);
}

static void on_unshelve(GtkButton *button, gpointer p)
{
    struct alarm_view *v = p;
    json_t *names = selection_array(v, true);

    (void)button;
    if (json_array_size(names) == 0) {
        gtk_label_set_text(GTK_LABEL(v->status),
                           _("None of the selected alarms is shelved."));
    } else {
        json_t *req = vg_proto_request("alarm_unshelve", -1);
        send_batch(v, false, names, req);
        json_decref(req);
    }
    json_decref(names);
}

/* --------------------------------------------------------------- journal */

struct journal_call {
    struct alarm_view *v; /* held */
    unsigned gen;
    bool older;
};

static void journal_set_busy(struct alarm_view *v, bool busy)
{
    v->jbusy = busy;
    gtk_widget_set_sensitive(v->jrefresh, !busy);
    if (busy) {
        gtk_widget_set_sensitive(v->jolder, FALSE);
    }
}

static void journal_add(struct alarm_view *v, json_t *e)
{
    GtkTreeIter it;
    char time[64], change[256];

    hmi_time_text(vg_proto_get_int(e, "time_ms", 0), time, sizeof time);
    snprintf(change, sizeof change, "%s → %s",
             hmi_alarm_status_text(vg_proto_get_str(e, "from", "")),
             hmi_alarm_status_text(vg_proto_get_str(e, "to", "")));
    gtk_list_store_append(v->jstore, &it);
    gtk_list_store_set(v->jstore, &it,
                       J_TIME, time,
                       J_ALARM, vg_proto_get_str(e, "alarm", ""),
                       J_CAUSE, hmi_alarm_cause_text(vg_proto_get_str(e, "cause", "")),
                       J_CHANGE, change,
                       J_USER, vg_proto_get_str(e, "user", ""),
                       J_STATION, vg_proto_get_str(e, "station", ""),
                       J_MESSAGE, json_is_object(e) ? hmi_alarm_message(v->h, e) : "",
                       -1);
}

static void journal_done(json_t *answer, const char *errmsg, void *ud)
{
    struct journal_call *call = ud;
    struct alarm_view *v = call->v;
    char *err = answer == NULL ? g_strdup(errmsg) : error_text(answer);

    if (!v->destroyed && call->gen == v->jgen) {
        journal_set_busy(v, false);
        if (err != NULL) {
            char *text = g_strdup_printf(_("The journal could not be read: %s"), err);
            gtk_label_set_text(GTK_LABEL(v->jstatus), text);
            g_free(text);
            hmi_error(v->h, _("The journal could not be read"), err);
        } else {
            json_t *entries = json_object_get(answer, "entries"), *e;
            bool more = json_is_true(json_object_get(answer, "more"));
            size_t i;
            char text[256];

            if (!call->older) {
                gtk_list_store_clear(v->jstore);
                v->jrows = 0;
            }
            json_array_foreach(entries, i, e) {
                long long id = vg_proto_get_int(e, "id", 0);
                journal_add(v, e);
                v->jrows++;
                if (id > 0) {
                    v->jlast_id = id;
                }
            }
            more = more && json_array_size(entries) > 0 && v->jlast_id > 0;
            gtk_widget_set_sensitive(v->jolder, more);
            snprintf(text, sizeof text,
                     more ? _("%zu entries, newest first; older ones follow with \"Older\"")
                          : _("%zu entries, newest first"),
                     v->jrows);
            gtk_label_set_text(GTK_LABEL(v->jstatus), text);
        }
    }
    g_free(err);
    json_decref(answer);
    g_object_unref(v->root);
    g_free(call);
}

static void journal_send(struct alarm_view *v, bool older)
{
    json_t *req = vg_proto_request("alarm_journal", -1);
    struct journal_call *call = g_new0(struct journal_call, 1);

    json_object_set_new(req, "from_ms", json_integer(v->jfrom_ms));
    json_object_set_new(req, "limit", json_integer(JOURNAL_PAGE));
    if (v->jsection_name != NULL) {
        json_object_set_new(req, "sections", json_pack("[s]", v->jsection_name));
    }
    if (v->jmax_prio > 0) {
        json_object_set_new(req, "max_priority", json_integer(v->jmax_prio));
    }
    if (older) {
        json_object_set_new(req, "before_id", json_integer(v->jlast_id));
    }
    call->v = hold(v);
    call->gen = ++v->jgen;
    call->older = older;
    journal_set_busy(v, true);
    gtk_label_set_text(GTK_LABEL(v->jstatus), _("Reading the journal…"));
    hmi_net_request(v->h->net, req, journal_done, call);
}

static void journal_refresh(struct alarm_view *v)
{
    const char *range = gtk_combo_box_get_active_id(GTK_COMBO_BOX(v->jrange));
    long long span_s = range != NULL ? atoll(range) : 3600;

    v->jloaded = true;
    v->jfrom_ms = (long long)hmi_now_ms() - (span_s > 0 ? span_s : 3600) * 1000;
    g_free(v->jsection_name);
    v->jsection_name = g_strdup(chosen_section(v->jsection));
    v->jmax_prio = chosen_priority(v->jprio);
    v->jlast_id = 0;
    journal_send(v, false);
}

static void on_journal_refresh(GtkButton *b, gpointer p)
{
    (void)b;
    journal_refresh(p);
}

static void on_journal_filter(GtkComboBox *c, gpointer p)
{
    struct alarm_view *v = p;
    (void)c;
    if (!v->filling && v->jloaded) {
        journal_refresh(v);
    }
}

static void on_journal_older(GtkButton *b, gpointer p)
{
    struct alarm_view *v = p;
    (void)b;
    if (!v->jbusy && v->jlast_id > 0) {
        journal_send(v, true);
    }
}

/* The journal is read when first shown rather than with the station's
 * start, which has more urgent requests to make. */
static void on_switch_page(GtkNotebook *nb, GtkWidget *page, guint n, gpointer p)
{
    struct alarm_view *v = p;
    (void)nb;
    (void)page;
    if (n == 1 && !v->jloaded) {
        journal_refresh(v);
    }
}

/* ---------------------------------------------------------------- build */

static GtkTreeViewColumn *add_column(GtkWidget *tree, const char *title, int col,
                                     bool colored, bool expand)
{
    GtkCellRenderer *r = gtk_cell_renderer_text_new();
    GtkTreeViewColumn *c;

    if (colored) {
        c = gtk_tree_view_column_new_with_attributes(
            title, r, "text", col, "cell-background", C_BG, "foreground", C_FG, "weight",
            C_WEIGHT, "style", C_STYLE, NULL);
    } else {
        c = gtk_tree_view_column_new_with_attributes(title, r, "text", col, NULL);
    }
    gtk_tree_view_column_set_resizable(c, TRUE);
    gtk_tree_view_column_set_expand(c, expand);
    if (expand) {
        g_object_set(r, "ellipsize", PANGO_ELLIPSIZE_END, NULL);
    }
    gtk_tree_view_append_column(GTK_TREE_VIEW(tree), c);
    return c;
}

static GtkWidget *scrolled(GtkWidget *child)
{
    GtkWidget *s = gtk_scrolled_window_new(NULL, NULL);
    gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(s), GTK_POLICY_AUTOMATIC,
                                   GTK_POLICY_AUTOMATIC);
    gtk_container_add(GTK_CONTAINER(s), child);
    gtk_widget_set_vexpand(s, TRUE);
    return s;
}

/* Widgets get "hmi-…" names: the station reports where those are for
 * tests that click them. */
static GtkWidget *button(const char *name, const char *label, GCallback cb,
                         struct alarm_view *v)
{
    GtkWidget *b = gtk_button_new_with_mnemonic(label);
    gtk_widget_set_name(b, name);
    g_signal_connect(b, "clicked", cb, v);
    return b;
}

static GtkWidget *build_current(struct alarm_view *v)
{
    GtkWidget *page = gtk_box_new(GTK_ORIENTATION_VERTICAL, 4);
    GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    GtkWidget *actions = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);

    gtk_container_set_border_width(GTK_CONTAINER(page), 6);
    v->section = gtk_combo_box_text_new();
    v->prio = priority_combo();
    v->state = gtk_combo_box_text_new();
    gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(v->state), _("All states"));
    gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(v->state), _("Unacknowledged"));
    gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(v->state), _("Acknowledged"));
    gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(v->state),
                                   _("Shelved or out of service"));
    gtk_combo_box_set_active(GTK_COMBO_BOX(v->state), ST_ALL);
    gtk_widget_set_name(v->section, "hmi-alarm-section");
    gtk_widget_set_name(v->prio, "hmi-alarm-priority");
    gtk_widget_set_name(v->state, "hmi-alarm-state");
    gtk_box_pack_start(GTK_BOX(bar), gtk_label_new(_("Section")), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->section, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), gtk_label_new(_("Priority")), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->prio, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), gtk_label_new(_("State")), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->state, FALSE, FALSE, 0);
    v->count = gtk_label_new("");
    gtk_box_pack_end(GTK_BOX(bar), v->count, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(page), bar, FALSE, FALSE, 0);

    v->store = gtk_list_store_new(C_N, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                  G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                  G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                  G_TYPE_STRING, G_TYPE_INT, G_TYPE_INT, G_TYPE_BOOLEAN);
    v->tree = gtk_tree_view_new_with_model(GTK_TREE_MODEL(v->store));
    gtk_widget_set_name(v->tree, "hmi-alarm-list");
    gtk_tree_view_set_tooltip_column(GTK_TREE_VIEW(v->tree), C_TOOLTIP);
    add_column(v->tree, _("Time"), C_TIME, true, false);
    add_column(v->tree, _("Priority"), C_PRIO, true, false);
    add_column(v->tree, _("Section"), C_SECTION, true, false);
    add_column(v->tree, _("Message"), C_MESSAGE, true, true);
    add_column(v->tree, _("State"), C_STATE, true, false);
    add_column(v->tree, _("Tag"), C_TAG, true, false);
    v->sel = gtk_tree_view_get_selection(GTK_TREE_VIEW(v->tree));
    gtk_tree_selection_set_mode(v->sel, GTK_SELECTION_MULTIPLE);
    gtk_box_pack_start(GTK_BOX(page), scrolled(v->tree), TRUE, TRUE, 0);

    v->ack = button("hmi-ack", _("_Acknowledge"), G_CALLBACK(on_ack), v);
    v->ack_section = button("hmi-ack-all", _("Acknowledge all in section"),
                            G_CALLBACK(on_ack_section), v);
    v->shelve = button("hmi-shelve", _("_Shelve…"), G_CALLBACK(on_shelve), v);
    v->unshelve = button("hmi-unshelve", _("_Unshelve"), G_CALLBACK(on_unshelve), v);
    gtk_box_pack_start(GTK_BOX(actions), v->ack, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(actions), v->ack_section, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(actions), v->shelve, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(actions), v->unshelve, FALSE, FALSE, 0);
    v->status = gtk_label_new("");
    gtk_widget_set_name(v->status, "hmi-alarm-status");
    gtk_label_set_ellipsize(GTK_LABEL(v->status), PANGO_ELLIPSIZE_END);
    gtk_label_set_xalign(GTK_LABEL(v->status), 0);
    gtk_box_pack_start(GTK_BOX(actions), v->status, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(page), actions, FALSE, FALSE, 0);

    g_signal_connect(v->section, "changed", G_CALLBACK(on_filter_changed), v);
    g_signal_connect(v->prio, "changed", G_CALLBACK(on_filter_changed), v);
    g_signal_connect(v->state, "changed", G_CALLBACK(on_filter_changed), v);
    g_signal_connect(v->sel, "changed", G_CALLBACK(on_selection_changed), v);
    g_signal_connect(v->tree, "map", G_CALLBACK(on_list_map), v);
    return page;
}

static GtkWidget *build_journal(struct alarm_view *v)
{
    GtkWidget *page = gtk_box_new(GTK_ORIENTATION_VERTICAL, 4);
    GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    GtkWidget *tree;

    gtk_container_set_border_width(GTK_CONTAINER(page), 6);
    v->jrange = gtk_combo_box_text_new();
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(v->jrange), "3600", _("Last hour"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(v->jrange), "28800", _("Last 8 hours"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(v->jrange), "86400", _("Last 24 hours"));
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(v->jrange), "604800", _("Last 7 days"));
    gtk_combo_box_set_active(GTK_COMBO_BOX(v->jrange), 2);
    gtk_widget_set_name(v->jrange, "hmi-journal-range");
    v->jsection = gtk_combo_box_text_new();
    v->jprio = priority_combo();
    v->jrefresh = button("hmi-journal-refresh", _("_Refresh"),
                         G_CALLBACK(on_journal_refresh), v);
    v->jolder = button("hmi-journal-older", _("_Older"), G_CALLBACK(on_journal_older), v);
    gtk_widget_set_sensitive(v->jolder, FALSE);
    gtk_box_pack_start(GTK_BOX(bar), gtk_label_new(_("Period")), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->jrange, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), gtk_label_new(_("Section")), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->jsection, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), gtk_label_new(_("Priority")), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->jprio, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->jrefresh, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->jolder, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(page), bar, FALSE, FALSE, 0);

    v->jstore = gtk_list_store_new(J_N, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                   G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                   G_TYPE_STRING);
    tree = gtk_tree_view_new_with_model(GTK_TREE_MODEL(v->jstore));
    gtk_widget_set_name(tree, "hmi-journal-list");
    add_column(tree, _("Time"), J_TIME, false, false);
    add_column(tree, _("Alarm"), J_ALARM, false, false);
    add_column(tree, _("Cause"), J_CAUSE, false, false);
    add_column(tree, _("Change"), J_CHANGE, false, false);
    add_column(tree, _("User"), J_USER, false, false);
    add_column(tree, _("Station"), J_STATION, false, false);
    add_column(tree, _("Message"), J_MESSAGE, false, true);
    gtk_box_pack_start(GTK_BOX(page), scrolled(tree), TRUE, TRUE, 0);
    v->jstatus = gtk_label_new("");
    gtk_label_set_xalign(GTK_LABEL(v->jstatus), 0);
    gtk_box_pack_start(GTK_BOX(page), v->jstatus, FALSE, FALSE, 0);

    g_signal_connect(v->jrange, "changed", G_CALLBACK(on_journal_filter), v);
    g_signal_connect(v->jsection, "changed", G_CALLBACK(on_journal_filter), v);
    g_signal_connect(v->jprio, "changed", G_CALLBACK(on_journal_filter), v);
    return page;
}

GtkWidget *hmi_alarm_view_new(struct hmi *h)
{
    struct alarm_view *v = g_new0(struct alarm_view, 1);
    GtkWidget *tab_current = gtk_label_new(_("Current alarms"));
    GtkWidget *tab_journal = gtk_label_new(_("Journal"));

    v->h = h;
    v->root = gtk_notebook_new();
    gtk_widget_set_name(v->root, "hmi-alarm-view");
    gtk_widget_set_name(tab_current, "hmi-tab-current");
    gtk_widget_set_name(tab_journal, "hmi-tab-journal");
    gtk_notebook_append_page(GTK_NOTEBOOK(v->root), build_current(v), tab_current);
    gtk_notebook_append_page(GTK_NOTEBOOK(v->root), build_journal(v), tab_journal);
    g_object_set_data_full(G_OBJECT(v->root), "hmi-alarm-view", v, view_free);
    g_signal_connect(v->root, "destroy", G_CALLBACK(on_destroy), v);
    g_signal_connect(v->root, "switch-page", G_CALLBACK(on_switch_page), v);
    hmi_alarm_view_project_changed(v->root);
    return v->root;
}

/* Alarms change often and the list is not often on screen: rebuild it
 * when it is, and otherwise when it comes into view (on_list_map). */
void hmi_alarm_view_alarms_changed(GtkWidget *view)
{
    struct alarm_view *v = view_of(view);

    if (v == NULL || v->destroyed) {
        return;
    }
    if (gtk_widget_get_mapped(v->tree)) {
        refill(v);
    } else {
        v->stale = true;
    }
}


void hmi_alarm_view_project_changed(GtkWidget *view)
{
    struct alarm_view *v = view_of(view);

    if (v == NULL || v->destroyed) {
        return;
    }
    v->filling = true;
    fill_sections(v, v->section);
    fill_sections(v, v->jsection);
    v->filling = false;
    refill(v);
}
