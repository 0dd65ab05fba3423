/* The bubblewrap views of device processes: see sandbox.h. */
#include "sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stack.h"

/* The directory of ASAN_OPTIONS' log_path=..., or "" (static: argv points into it). */
static const char *sanitizer_dir(void)
{
    static char dir[STACK_PATH_MAX];
    const char *o = getenv("ASAN_OPTIONS"), *p = o != NULL ? strstr(o, "log_path=") : NULL;
    dir[0] = '\0';
    if (p == NULL || (p != o && p[-1] != ':' && p[-1] != ' '))
        return dir;
    p += strlen("log_path=");
    size_t n = strcspn(p, ": ");
    if (n == 0 || n >= sizeof dir || p[0] != '/')
        return dir;
    memcpy(dir, p, n);
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        dir[0] = '\0';
    else
        *slash = '\0';
    struct stat st;
    if (dir[0] != '\0' && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        dir[0] = '\0';
    return dir;
}

int sandbox_base(const char **argv, unsigned flags, int keep_sanitizer_logs)
{
    static const char *const fixed[] = {
        "--unshare-all", "--new-session",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
    };
    int n = 0;
    argv[n++] = SANDBOX_BWRAP;
    if (flags & SANDBOX_DIE_WITH_PARENT)
        argv[n++] = "--die-with-parent";
    if (flags & SANDBOX_AS_PID1)
        argv[n++] = "--as-pid-1";
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = fixed[i];
    if (flags & SANDBOX_SHARE_NET)
        argv[n++] = "--share-net";
    const char *san = keep_sanitizer_logs ? sanitizer_dir() : "";
    if (san[0] != '\0') {
        argv[n++] = "--bind";
        argv[n++] = san;
        argv[n++] = san;
    }
    return n;
}
