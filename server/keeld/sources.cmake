# keeld's sources but main.c, relative to server/keeld: the server build (server/CMakeLists.txt) and
# the fuzz build (tests/fuzz/clang) compile this one list, so a new file reaches both.
set(KEELD_LIB_SOURCES
  config.c
  kd_log.c
  notify.c
  token.c
  store_sqlite.c
  mqtt.c
  mqconn.c
  ingest.c
  chunkmemo.c
  admit.c
  metrics.c
  page.c
  store_sqlite_fleet.c
  store_sqlite_delta.c
  delta_pick.c
  store_sqlite_stmt.c
  dbgrelay.c
  ota.c
  api.c
  devtype.c
  rollout_plan.c
  rollout.c
  rollout_api.c
  store_sqlite_rollout.c
)
