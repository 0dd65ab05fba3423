# The libFuzzer targets (tests/fuzz/fuzz_<name>.c), read by the clang build (clang/CMakeLists.txt)
# and by the main build's CTest cases (CMakeLists.txt). Add a target's name here; see README.md.
set(KEEL_FUZZ_TARGETS
  bundle          # bundle manifest decode + verify, upd_inspect against a device's flash
  envelope_device # protocol envelopes on the topics a device subscribes to
  envelope_keeld  # protocol envelopes on the topics keeld subscribes to, crash reports in them
  crash           # crash report decode and format
  records         # identity, app header, journal and provisioning (key/cert/seed) records
  rsp             # the GDB RSP engine fed a byte stream
  dbgframe        # debug messages: decode, session start with a peer key, frame open, RSP behind it
  devchan         # the device's app channels: app/down deliveries and the app's keel_channel_* arguments
  keeld_mqtt      # keeld's MQTT ingest with the real store, OTA and debug relay behind it
  keeld_http      # keeld's REST API: routes, query strings, JSON bodies (real libmicrohttpd + store)
  delta           # the delta patch decoder, fed in pieces, against a fixed old image
)
