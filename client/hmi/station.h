/* vigil-hmi: creating and ending the station window (station.c). The rest
 * of the station's state is in hmi.h. */
#ifndef VG_HMI_STATION_H
#define VG_HMI_STATION_H

#include "hmi.h"

struct hmi_station_options {
    const char *cluster;         /* "host:port,…" */
    const char *station;         /* the profile's name in the project */
    const char *user;            /* who acts, until login exists */
    const char *language;        /* NULL: the profile's */
    const char *state_file;      /* NULL: none (see README/MESSAGES) */
    const char *screenshot_file; /* written on hmi_station_screenshot() */
};

/* Build the window (shown at once, "connecting") and start the network
 * threads. NULL with a sentence in ERRMSG when the options are unusable. */
struct hmi *hmi_station_new(const struct hmi_station_options *o, char *errmsg);

/* Stop the network threads and free everything; the window must be gone. */
void hmi_station_free(struct hmi *h);

/* Save what the X server shows in the window as a PNG to the screenshot
 * file. */
void hmi_station_screenshot(struct hmi *h);

#endif /* VG_HMI_STATION_H */
