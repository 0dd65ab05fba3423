/* keeld diagnostics on stderr. */
#include <stdarg.h>
#include <stdio.h>

#include "kd_log.h"

static int max_level = KD_LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

void kd_log_set_level(int level)
{
    max_level = level;
}

void kd_log(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (level > max_level || level < 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One fprintf per line so lines from the HTTP and MQTT threads never interleave. */
    fprintf(stderr, "keeld: %s: %s\n", names[level], line);
}
