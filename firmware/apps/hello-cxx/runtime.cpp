/*
 * runtime.cpp: the C++ runtime hooks this app uses, supplied by the app itself (the SDK has no
 * C++ runtime, on purpose). Without exceptions, RTTI or a heap, that is just these.
 */
#include <stdint.h>

extern "C" {

/* A pure virtual call is a bug: stop with an undefined instruction so the microvisor reports it. */
void __cxa_pure_virtual(void)
{
    __asm__ volatile("udf #0x70");
    for (;;) {
    }
}

/*
 * Global destructors are registered through __aeabi_atexit. A firmware app never runs them
 * (it returns from main only to be stopped), so registration is a no-op.
 */
void *__dso_handle = &__dso_handle;
int __aeabi_atexit(void *object, void (*destructor)(void *), void *dso)
{
    (void)object;
    (void)destructor;
    (void)dso;
    return 0;
}
}
