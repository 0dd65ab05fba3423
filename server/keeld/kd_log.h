/* keeld's own diagnostics: one line per event on stderr, "keeld: <level>: <message>". */
#ifndef KEEL_SERVER_KEELD_KD_LOG_H
#define KEEL_SERVER_KEELD_KD_LOG_H

enum kd_log_level { KD_LOG_ERROR = 0, KD_LOG_WARN = 1, KD_LOG_INFO = 2, KD_LOG_DEBUG = 3 };

/* Messages above this level are dropped (set once at start-up from the configuration). */
void kd_log_set_level(int level);
void kd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define KD_ERROR(...) kd_log(KD_LOG_ERROR, __VA_ARGS__)
#define KD_WARN(...) kd_log(KD_LOG_WARN, __VA_ARGS__)
#define KD_INFO(...) kd_log(KD_LOG_INFO, __VA_ARGS__)
#define KD_DEBUG(...) kd_log(KD_LOG_DEBUG, __VA_ARGS__)

#endif /* KEEL_SERVER_KEELD_KD_LOG_H */
