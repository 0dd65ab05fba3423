/* Shared pieces of the keel commands that talk to keeld (fleetcli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fapi.h"
#include "fleetcli.h"

bool fleetcli_api_opt(int c, api_opts_t *o)
{
    switch (c) {
    case OPT_URL:
        o->url = optarg;
        return true;
    case OPT_TOKEN:
        o->token = optarg;
        return true;
    case OPT_JSON:
        o->json = true;
        return true;
    default:
        return false;
    }
}

void fleetcli_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL)
        printf("%s\n", s);
    free(s);
}

int fleetcli_finish(int rc)
{
    fapi_cleanup();
    return rc;
}

const char *fleetcli_jstr(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : dflt;
}

long long fleetcli_jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* Unix ms as local "YYYY-MM-DD HH:MM:SS.mmm"; "-" for 0/null. */
const char *fleetcli_fmt_time(long long ms, char *buf, size_t cap)
{
    if (ms <= 0)
        return "-";
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03lld", day, ms % 1000);
    return buf;
}

volatile int fleetcli_stop;

void fleetcli_on_stop(int sig)
{
    (void)sig;
    fleetcli_stop = 1;
}
