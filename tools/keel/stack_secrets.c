/* `keel up`'s secrets directory: see stack.h (stack_secrets_dir) and docs/security.md. */
#include "stack.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fapi.h"

/* Same bytes? (both readable regular files of at most 1 MiB) */
static bool same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa != NULL && fb != NULL;
    for (size_t n = 0; same && n <= (1u << 20); n++) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF)
            break;
    }
    if (fa != NULL)
        fclose(fa);
    if (fb != NULL)
        fclose(fb);
    return same;
}

/* A stack secret at the top of DIR in the layout before DIR/secrets: a key or the config. */
static bool old_secret(const char *name)
{
    size_t n = strlen(name);
    return strcmp(name, "config") == 0 || (n > 4 && strcmp(name + n - 4, ".key") == 0);
}

bool stack_secrets_dir(const char *prog, const char *dir, char *secrets, size_t cap)
{
    snprintf(secrets, cap, "%s/" FAPI_STATE_SECRETS, dir);
    if ((mkdir(secrets, 0700) != 0 && errno != EEXIST) || chmod(secrets, 0700) != 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", prog, secrets, strerror(errno));
        return false;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, dir, strerror(errno));
        return false;
    }
    char moved[512] = "";
    bool ok = true;
    struct dirent *e;
    while (ok && (e = readdir(d)) != NULL) {
        char from[STACK_PATH_MAX + 272], to[2 * STACK_PATH_MAX];
        struct stat st;
        snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
        if (!old_secret(e->d_name) || lstat(from, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(to, sizeof to, "%s/%s", secrets, e->d_name);
        if (access(to, F_OK) == 0) {
            if (!same_file(from, to)) {
                fprintf(stderr, "%s: %s and %s differ: the state dir keeps its secrets in %s "
                                "(an older keel kept them at its top); keep the right one there "
                                "and remove the other\n", prog, from, to, secrets);
                ok = false;
            } else if (unlink(from) != 0) {
                fprintf(stderr, "%s: cannot remove %s: %s\n", prog, from, strerror(errno));
                ok = false;
            }
            continue;
        }
        if (chmod(from, 0600) != 0 || rename(from, to) != 0) {
            fprintf(stderr, "%s: cannot move %s into %s: %s\n", prog, from, secrets,
                    strerror(errno));
            ok = false;
        } else if (strlen(moved) + strlen(e->d_name) + 2 < sizeof moved) {
            strcat(moved, " ");
            strcat(moved, e->d_name);
        }
    }
    closedir(d);
    if (moved[0] != '\0')
        printf("moved the stack's secrets of an older layout into %s (no device process sees it):%s\n",
               secrets, moved);
    return ok;
}

