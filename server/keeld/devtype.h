/*
 * Which bundles the targeted devices can install: a bundle names the device type it is built for
 * (its manifest's device_type); a device's hello names the type it installs (Hello.device_type,
 * kept in the registry). keeld compiles in no board: it learns each device's type from its hello,
 * and refuses a deployment or rollout that no targeted device could install, instead of letting
 * every device refuse it.
 */
#ifndef KEEL_SERVER_KEELD_DEVTYPE_H
#define KEEL_SERVER_KEELD_DEVTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/*
 * 0 when some device of the target (kind/target as for deployments) may install a bundle of
 * device_type, or when a device's type is unknown (0: a hello from before protocol field
 * Hello.device_type, or none yet: the device decides); otherwise 422 with the reason in
 * why (503 when the store failed).
 */
unsigned devtype_refuse(store_t *s, int64_t device_type, const char *kind, const char *target,
                        char *why, size_t cap);

#endif /* KEEL_SERVER_KEELD_DEVTYPE_H */
