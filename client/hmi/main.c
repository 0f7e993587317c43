/* vigil-hmi: the operator station. Parses the command line, sets up
 * gettext, builds the station (station.c) and runs GTK's main loop.
 *
 *   vigil-hmi --cluster HOST:PORT,… --station NAME [--user NAME]
 *             [--language CODE] [--state-file PATH] [--screenshot PATH]
 *
 * SIGTERM / SIGINT end it cleanly; SIGUSR1 saves a screenshot of the window
 * to --screenshot (tests and support). */
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>

#include "station.h"

#ifndef HMI_LOCALEDIR
#define HMI_LOCALEDIR "/usr/local/share/locale"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vigil-hmi --cluster HOST:PORT[,HOST:PORT...] --station NAME\n"
            "                 [--user NAME] [--language CODE]\n"
            "                 [--state-file PATH] [--screenshot PATH]\n"
            "  --cluster     client addresses of cluster nodes (default: $VIGIL_CLUSTER)\n"
            "  --station     this station's name in the project (its profile)\n"
            "  --user        who acts at this station (default: $USER)\n"
            "  --language    override the profile's runtime language (a project language)\n"
            "  --state-file  keep a JSON summary of what the station shows in PATH\n"
            "  --screenshot  where SIGUSR1 saves a PNG of the window\n");
}

/* Message catalogues: next to the binary in a build tree
 * (BUILD/client/hmi/locale), else the installed ones. */
static void setup_gettext(void)
{
    char exe[4096], dir[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *base = HMI_LOCALEDIR;

    /* gettext ignores LANGUAGE under the plain "C" locale, which is what a
     * bare CI machine or Xvfb session has; C.UTF-8 behaves the same
     * otherwise and lets the station choose its language. */
    if (setlocale(LC_ALL, "") == NULL || strcmp(setlocale(LC_MESSAGES, NULL), "C") == 0 ||
        strcmp(setlocale(LC_MESSAGES, NULL), "POSIX") == 0) {
        setlocale(LC_ALL, "C.UTF-8");
    }
    if (n > 0) {
        char *slash;
        exe[n] = '\0';
        if ((slash = strrchr(exe, '/')) != NULL) {
            *slash = '\0';
            snprintf(dir, sizeof dir, "%s/locale", exe);
            if (access(dir, R_OK) == 0) {
                base = dir;
            }
        }
    }
    bindtextdomain("vigil-hmi", base);
    bind_textdomain_codeset("vigil-hmi", "UTF-8");
    textdomain("vigil-hmi");
}

static gboolean on_quit(gpointer p)
{
    (void)p;
    gtk_main_quit();
    return G_SOURCE_CONTINUE;
}

static gboolean on_shot(gpointer p)
{
    hmi_station_screenshot(p);
    return G_SOURCE_CONTINUE;
}

static void on_window_destroy(GtkWidget *w, gpointer p)
{
    struct hmi *h = p;
    (void)w;
    h->window = NULL;
    gtk_main_quit();
}

int main(int argc, char **argv)
{
    struct hmi_station_options o;
    char errmsg[VG_ERRMSG_SIZE];
    struct hmi *h;

    memset(&o, 0, sizeof o);
    o.cluster = getenv("VIGIL_CLUSTER");
    o.user = getenv("USER");
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--cluster") == 0) {
            slot = &o.cluster;
        } else if (strcmp(argv[i], "--station") == 0) {
            slot = &o.station;
        } else if (strcmp(argv[i], "--user") == 0) {
            slot = &o.user;
        } else if (strcmp(argv[i], "--language") == 0) {
            slot = &o.language;
        } else if (strcmp(argv[i], "--state-file") == 0) {
            slot = &o.state_file;
        } else if (strcmp(argv[i], "--screenshot") == 0) {
            slot = &o.screenshot_file;
        } else {
            fprintf(stderr, "vigil-hmi: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc || argv[i + 1][0] == '\0') {
            fprintf(stderr, "vigil-hmi: %s needs a value\n", argv[i]);
            return 2;
        }
        *slot = argv[++i];
    }
    if (o.cluster == NULL || o.cluster[0] == '\0') {
        fprintf(stderr, "vigil-hmi: name the cluster with --cluster HOST:PORT,... "
                        "(or set VIGIL_CLUSTER)\n");
        return 2;
    }
    if (o.station == NULL) {
        fprintf(stderr, "vigil-hmi: name this station with --station NAME (its "
                        "profile in the project)\n");
        return 2;
    }
    if (o.user == NULL) {
        o.user = "operator";
    }
    setup_gettext();
    if (!gtk_init_check(&argc, &argv)) {
        fprintf(stderr, "vigil-hmi: cannot open the display (is DISPLAY set?)\n");
        return 1;
    }
    if ((h = hmi_station_new(&o, errmsg)) == NULL) {
        fprintf(stderr, "vigil-hmi: %s\n", errmsg);
        return 2;
    }
    g_signal_connect(h->window, "destroy", G_CALLBACK(on_window_destroy), h);
    g_unix_signal_add(SIGTERM, on_quit, NULL);
    g_unix_signal_add(SIGINT, on_quit, NULL);
    g_unix_signal_add(SIGUSR1, on_shot, h);
    gtk_main();
    /* The network threads stop first, so nothing is delivered to views that
     * are being destroyed. */
    hmi_net_stop(h->net);
    h->net = NULL;
    if (h->window != NULL) {
        g_signal_handlers_disconnect_by_data(h->window, h);
        gtk_widget_destroy(h->window);
        h->window = NULL;
    }
    hmi_station_free(h);
    return 0;
}
