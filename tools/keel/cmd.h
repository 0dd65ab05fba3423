/* keel CLI: the command families (nouns). Each lives in its own cmd_<noun>.c. */
#ifndef KEEL_TOOLS_KEEL_CMD_H
#define KEEL_TOOLS_KEEL_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

extern const cli_noun_t cmd_device;

/* Fleet commands against keeld's REST API (cmd_fleet.c). */
extern const cli_noun_t cmd_devices;
extern const cli_noun_t cmd_logs;
extern const cli_noun_t cmd_crashes;
extern const cli_noun_t cmd_crash;
extern const cli_noun_t cmd_ping;
extern const cli_noun_t cmd_restart;
extern const cli_noun_t cmd_reboot;
extern const cli_noun_t cmd_token;
extern const cli_noun_t cmd_channel;
extern const cli_noun_t cmd_elf;
/* `keel device show D`: lives with the fleet commands, listed in cmd_device's verb table. */
int cmd_device_show(const char *prog, int argc, char **argv);

/* Update bundles and their signing keys (cmd_bundle.c, cmd_keys.c). */
extern const cli_noun_t cmd_bundle;
extern const cli_noun_t cmd_keys;
/* Read a whole file of at most max bytes (cmd_bundle.c); false after saying why. */
bool cmd_bundle_read(const char *prog, const char *path, size_t max, uint8_t **out, size_t *len);
/* `keel bundle build --base OLD.kb`: the delta bundle from OLD.kb's app slot to region's
 * (content_len bytes; manifest template tmpl), written beside out (bundle_delta.c). */
#define BUNDLE_BASES_MAX 8u
struct kbdl_manifest;
bool bundle_base_ok(const char *prog, const char *base_path); /* checked before writing */
int bundle_write_delta(const char *prog, const char *out, const char *base_path,
                       const struct kbdl_manifest *tmpl, const uint8_t *region,
                       uint32_t content_len, const uint8_t priv[32]);
/* `keel bundle diff OLD.kb NEW.kb`: bytes sent by pages and by a delta (cmd_bundle_diff.c). */
int cmd_bundle_diff(const char *prog, int argc, char **argv);
/* Deployments, and `keel bundle upload` (listed in cmd_bundle's verbs): keeld's API (cmd_fleet.c). */
extern const cli_noun_t cmd_deploy;
/* Rollouts: deployments in phases (cmd_rollout.c). */
extern const cli_noun_t cmd_rollout;
int cmd_bundle_upload(const char *prog, int argc, char **argv);
int cmd_bundle_list(const char *prog, int argc, char **argv);

/* Live debugging of a device's app through keeld (cmd_debug.c). */
extern const cli_noun_t cmd_debug;

/* The local fleet stack (cmd_stack.c). */
extern const cli_noun_t cmd_up;
extern const cli_noun_t cmd_down;

#endif /* KEEL_TOOLS_KEEL_CMD_H */
