#!/usr/bin/env bash
# scripts/deps.sh TP_DIR: install what building and testing Keel needs. Idempotent; `make deps`
# and every other make target run it.
#
#   1. Debian packages named in scripts/packages/*.txt, installed with --no-install-recommends.
#   2. Third-party sources pinned in scripts/third_party.lock, fetched as Debian *source* packages
#      of the suite each pin names (bookworm, trixie, sid) through a private apt configuration in
#      TP_DIR/.apt (the system's apt sources are neither read nor changed), every file
#      sha256-checked against the lock, unpacked with dpkg-source into TP_DIR/<name>, then our own
#      patches/<name>/*.patch applied in name order.
#      A `follow NAME SERIES` line lets a moving suite replace the pin: when Debian no longer serves
#      the pinned version, the newest NAME of the same suite whose upstream version starts with
#      SERIES (e.g. 3.6.) and is newer than the pin is taken instead. Its files are then verified
#      through the signed index alone (InRelease signature -> Sources sha256 -> .dsc checksums,
#      which apt and dpkg-source check); the build log says so and names the version, and
#      TP_DIR/<name>/.keel-version records which one was unpacked.
#
# Every make target runs this, so the usual case (nothing missing) must cost almost nothing and print
# nothing: TP_DIR/.deps-stamp holds a hash of everything that decides the result (package lists,
# lock, patches, this script). When it matches, the packages are still installed and the source trees
# are still there, we exit at once.
set -euo pipefail
shopt -s nullglob

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly LOCK="$ROOT/scripts/third_party.lock"
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# Run a noisy command with its output in LOG; on failure show the tail and stop.
run_logged() {
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "'$*' failed (full log: $log)"
  fi
}

if [ $# -ne 1 ] || [ -z "$1" ]; then
  die "usage: scripts/deps.sh TP_DIR  (where third-party sources go, e.g. build/third_party)"
fi
mkdir -p "$1" || die "cannot create $1"
TP_DIR="$(cd "$1" && pwd)"
readonly TP_DIR

list_files=("$ROOT"/scripts/packages/*.txt)
[ ${#list_files[@]} -gt 0 ] || die "no package lists in $ROOT/scripts/packages/*.txt"
[ -f "$LOCK" ] || die "missing $LOCK"

# ---- what is wanted ---------------------------------------------------------------------------

mapfile -t packages < <(sed 's/#.*//' "${list_files[@]}" | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)

# Lock lines: name suite version file sha256, one version per name; `follow name series` lines.
# Every field is checked here so that a typo gives a message naming the line instead of a confusing
# apt or sha256 error later.
declare -A tp_version=() tp_suite=() tp_follow=()
tp_names=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  line="${line%%#*}"
  read -r -a f <<<"$line" || true
  [ ${#f[@]} -eq 0 ] && continue
  if [ "${f[0]}" = follow ]; then
    if [ ${#f[@]} -ne 3 ] || ! [[ "${f[2]}" =~ ^[0-9][0-9.]*\.$ ]]; then
      die "$LOCK:$lineno: expected 'follow name series.' (e.g. follow mbedtls 3.6.), got: $line"
    fi
    tp_follow[${f[1]}]="${f[2]}"
    continue
  fi
  [ ${#f[@]} -eq 5 ] || die "$LOCK:$lineno: expected 'name suite version file sha256', got: $line"
  [[ "${f[1]}" =~ ^[a-z]+$ ]] || die "$LOCK:$lineno: '${f[1]}' is not a Debian suite name"
  [[ "${f[4]}" =~ ^[0-9a-f]{64}$ ]] || die "$LOCK:$lineno: '${f[4]}' is not a lowercase sha256"
  [[ "${f[3]}" == "${f[0]}_"* ]] || die "$LOCK:$lineno: file '${f[3]}' does not belong to source package '${f[0]}'"
  if [ -z "${tp_version[${f[0]}]:-}" ]; then
    tp_version[${f[0]}]="${f[2]}"
    tp_suite[${f[0]}]="${f[1]}"
    tp_names+=("${f[0]}")
  elif [ "${tp_version[${f[0]}]}" != "${f[2]}" ] || [ "${tp_suite[${f[0]}]}" != "${f[1]}" ]; then
    die "$LOCK:$lineno: ${f[0]} pinned to both ${tp_suite[${f[0]}]} ${tp_version[${f[0]}]} and ${f[1]} ${f[2]}; keep one"
  fi
done <"$LOCK"
for name in "${!tp_follow[@]}"; do
  [ -n "${tp_version[$name]:-}" ] || die "$LOCK: 'follow $name' but $name is not pinned"
done

# Files and hashes of one locked package, as "file sha256" lines.
lock_files() { awk -v n="$1" '{ sub(/#.*/, "") } $1 == n && NF == 5 { print $4, $5 }' "$LOCK"; }

patch_hash() {
  local p=("$ROOT/patches/$1"/*.patch)
  if [ ${#p[@]} -eq 0 ]; then echo none; else sha256sum "${p[@]}" | sed "s|$ROOT/||" | sha256sum | cut -c1-64; fi
}

stamp_key() {
  sha256sum "${list_files[@]}" "$LOCK" "$ROOT/scripts/deps.sh" "$ROOT"/patches/*/*.patch |
    sed "s|$ROOT/||" | sha256sum | cut -c1-64
}

# Installed means dpkg status "i" (the second letter of db:Status-Abbrev), whatever the selection.
missing_packages() {
  local installed
  installed="$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${packages[@]}" 2>/dev/null |
    awk 'substr($1, 2, 1) == "i" { print $2 }' || true)"
  local p
  for p in "${packages[@]}"; do
    grep -qxF "$p" <<<"$installed" || echo "$p"
  done
}

source_marker() { echo "$1 ${tp_suite[$1]} ${tp_version[$1]} patches:$(patch_hash "$1")"; }

sources_present() {
  local n
  for n in "${tp_names[@]}"; do
    [ -f "$TP_DIR/$n/.keel-source" ] && [ "$(<"$TP_DIR/$n/.keel-source")" = "$(source_marker "$n")" ] || return 1
  done
}

# ---- fast path --------------------------------------------------------------------------------

readonly STAMP="$TP_DIR/.deps-stamp"
key="$(stamp_key)"
if [ -f "$STAMP" ] && [ "$(<"$STAMP")" = "$key" ] && [ -z "$(missing_packages)" ] && sources_present; then
  # Quiet, except when a tree is not the pinned version (Debian replaced it): say so on every build.
  grep -h "Debian replaced" "$TP_DIR/versions.txt" 2>/dev/null | sed 's/^/deps: WARNING: third-party /' || true
  exit 0
fi

# Two make invocations on one build tree must not unpack into the same place at once.
readonly LOG_DIR="$TP_DIR/.logs"
mkdir -p "$LOG_DIR"
exec 9>"$TP_DIR/.lock"
flock -w 900 9 || die "another scripts/deps.sh has held $TP_DIR/.lock for 15 minutes; is it stuck?"

# ---- 1. Debian packages -----------------------------------------------------------------------

system_updated=0
system_apt_update() {
  [ "$system_updated" -eq 1 ] && return
  # Other apt users (unattended upgrades, a second build) hold the dpkg lock for a while: wait for it.
  run_logged "$LOG_DIR/apt-get-update.log" apt-get -o DPkg::Lock::Timeout=600 update
  system_updated=1
}

mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -gt 0 ]; then
  install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    printf 'deps: missing Debian packages: %s\n' "${missing[*]}" >&2
    printf 'deps: install them as root, then run make again:\n  sudo sh -c '\''%s'\''\n' "$install_cmd" >&2
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  system_apt_update
  run_logged "$LOG_DIR/apt-get-install.log" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
  mapfile -t missing < <(missing_packages)
  [ ${#missing[@]} -eq 0 ] || die "still not installed after apt-get install: ${missing[*]} (see $LOG_DIR/apt-get-install.log)"
fi

# ---- 2. third-party sources -------------------------------------------------------------------

# The Debian mirror is the one the system's apt already uses for its release's main component (a
# local mirror or proxy keeps working; it must carry every suite the lock names); KEEL_DEBIAN_MIRROR
# overrides it. Only the URI is read from the system.
system_mirror() {
  # shellcheck disable=SC2016 # apt's own $(FIELD) syntax, not the shell's
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT) $(TARGET_OF)' 2>/dev/null |
    awk '$2 !~ /-/ && $3 == "main" && $4 == "deb" { print $1; exit }'
}

debian_mirror() {
  local m="${KEEL_DEBIAN_MIRROR:-}"
  [ -n "$m" ] || m="$(system_mirror)"
  if [ -z "$m" ] && [ "$(id -u)" -eq 0 ]; then
    system_apt_update # apt only lists targets it has an index for
    m="$(system_mirror)"
  fi
  [ -n "$m" ] || die "the system's apt sources have no Debian main entry (apt-get indextargets); run apt-get update, or set KEEL_DEBIAN_MIRROR to a Debian mirror URI"
  echo "$m"
}

readonly APT_DIR="$TP_DIR/.apt"
readonly DL_DIR="$TP_DIR/.download"
# SourceList/SourceParts=/dev/null hide the system's sources; lists and caches live in TP_DIR, so
# nothing under /etc/apt or /var/lib/apt is written (only the mirror URI above is read).
apt_opts=(
  -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::Etc::sourcelist=$APT_DIR/debsrc.sources"
  -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
)
# As root apt drops to the _apt user to download, which cannot write into a build tree of root's;
# it would fall back to root with a warning anyway, so say so up front and keep the output clean.
[ "$(id -u)" -ne 0 ] || apt_opts+=(-o APT::Sandbox::User=root)

index_fresh=0
update_source_index() {
  [ "$index_fresh" -eq 1 ] && return
  local mirror suites
  mirror="$(debian_mirror)"
  suites="$(printf '%s\n' "${tp_suite[@]}" | sort -u | tr '\n' ' ')"
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$DL_DIR"
  cat >"$APT_DIR/debsrc.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: ${suites% }
Components: main
Signed-By: $KEYRING
EOF
  say "updating the private Debian source index (deb-src ${suites% }, in $APT_DIR)"
  run_logged "$LOG_DIR/apt-source-update.log" apt-get "${apt_opts[@]}" --error-on=any update
  index_fresh=1
}

# Check the downloaded files of NAME against the lock. Prints one line per problem; returns 1 if any.
verify_download() {
  local name="$1" file want have bad=0
  while read -r file want; do
    if [ ! -f "$DL_DIR/$file" ]; then
      echo "$file: not downloaded"; bad=1; continue
    fi
    have="$(sha256sum "$DL_DIR/$file" | cut -c1-64)"
    if [ "$have" != "$want" ]; then
      echo "$file: sha256 is $have, scripts/third_party.lock pins $want"; bad=1
    fi
  done < <(lock_files "$name")
  return "$bad"
}

# Every file the .dsc refers to must be pinned too, or the lock would not cover what gets unpacked.
check_dsc_covered() {
  local name="$1" dsc="$2" file
  while read -r file; do
    lock_files "$name" | grep -q "^$file " ||
      die "$dsc lists $file, which scripts/third_party.lock does not pin; add its sha256 to the lock"
  done < <(awk '/^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 } on && NF == 3 { print $3 }' "$DL_DIR/$dsc")
}

# Versions of NAME that Debian's SUITE serves now, from the private (signed) index.
served_versions() {
  apt-cache "${apt_opts[@]}" madison "$1" 2>/dev/null |
    awk -F'|' -v s=" $2/main Sources" '$3 ~ s"$" { gsub(/ /, "", $2); print $2 }'
}

# The newest version of NAME in its suite that follows the pin's series (tp_follow) and is newer
# than the pin; empty when there is none.
replacement_version() {
  local name="$1" pin="${tp_version[$1]}" series="${tp_follow[$1]:-}" v best=""
  [ -n "$series" ] || return 0
  while read -r v; do
    [[ "${v#*:}" == "$series"* ]] || continue
    dpkg --compare-versions "$v" gt "$pin" || continue
    if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best="$v"; fi
  done < <(served_versions "$name" "${tp_suite[$name]}")
  echo "$best"
}

# Download NAME=VERSION into DL_DIR. apt checks every file against the sha256 of the suite's
# Sources index, whose InRelease signature it checked against KEYRING.
apt_source() {
  local name="$1" version="$2"
  say "downloading Debian source package $name $version (${tp_suite[$name]})"
  if ! (cd "$DL_DIR" && apt-get "${apt_opts[@]}" source --download-only "$name=$version") >"$LOG_DIR/apt-source-$name.log" 2>&1; then
    tail -n 5 "$LOG_DIR/apt-source-$name.log" >&2
    die "could not download $name $version from Debian ${tp_suite[$name]} (log: $LOG_DIR/apt-source-$name.log)"
  fi
}

# Fetch NAME; sets used_version (the version to unpack) and used_how (how it was verified).
fetch_source() {
  local name="$1" version="${tp_version[$1]}" problems file want repl
  used_version="$version"
  used_how="sha256-pinned in scripts/third_party.lock"
  if problems="$(verify_download "$name")"; then return; fi
  # Partial or stale files from an interrupted run: drop the bad ones and download again.
  while read -r file want; do
    if [ -f "$DL_DIR/$file" ] && [ "$(sha256sum "$DL_DIR/$file" | cut -c1-64)" != "$want" ]; then
      rm -f "$DL_DIR/$file"
    fi
  done < <(lock_files "$name")
  update_source_index
  if ! served_versions "$name" "${tp_suite[$name]}" | grep -qxF "$version"; then
    repl="$(replacement_version "$name")"
    [ -n "$repl" ] || die "Debian ${tp_suite[$name]} no longer serves $name $version$([ -n "${tp_follow[$name]:-}" ] && echo " nor a newer ${tp_follow[$name]}x") (served: $(served_versions "$name" "${tp_suite[$name]}" | tr '\n' ' ')); pin the one it serves in scripts/third_party.lock"
    apt_source "$name" "$repl"
    used_version="$repl"
    used_how="Debian replaced the pinned $version; verified through the signed ${tp_suite[$name]} index only (update scripts/third_party.lock)"
    say "WARNING: $name $version is gone from Debian ${tp_suite[$name]}; using $repl, verified through the signed index"
    sha256sum "$DL_DIR/${name}_${repl#*:}"* "$DL_DIR/${name}_${repl%%-*}".orig* 2>/dev/null | sort -u |
      awk -v n="$name" -v s="${tp_suite[$name]}" -v v="$repl" '{ f = $2; sub(/.*\//, "", f); printf "deps:   lock line: %s %s %s %s %s\n", n, s, v, f, $1 }'
    return
  fi
  apt_source "$name" "$version"
  if ! problems="$(verify_download "$name")"; then
    for file in $(lock_files "$name" | cut -d' ' -f1); do
      [ -f "$DL_DIR/$file" ] && mv -f "$DL_DIR/$file" "$DL_DIR/$file.rejected"
    done
    printf '%s\n' "$problems" >&2
    die "the download of $name $version does not match scripts/third_party.lock; refusing to unpack it (moved to $DL_DIR/*.rejected). Check why Debian serves different bytes before updating the lock."
  fi
  say "verified sha256 of $(lock_files "$name" | wc -l) files of $name $version"
}

unpack_source() {
  local name="$1" dest="$TP_DIR/$1" tmp="$TP_DIR/.$1.tmp" dsc p
  [ -f "$dest/.keel-source" ] && [ "$(<"$dest/.keel-source")" = "$(source_marker "$name")" ] && return
  fetch_source "$name"
  dsc="${name}_${used_version#*:}.dsc"
  if [ "$used_version" = "${tp_version[$name]}" ]; then
    lock_files "$name" | grep -q "^$dsc " || die "scripts/third_party.lock pins no $dsc for $name"
    check_dsc_covered "$name" "$dsc"
  fi
  rm -rf "$tmp"
  # --no-copy: keep the orig tarball in .download instead of a copy next to the tree. dpkg-source
  # checks every file against the .dsc's checksums.
  run_logged "$LOG_DIR/unpack-$name.log" dpkg-source --no-copy -x "$DL_DIR/$dsc" "$tmp"
  for p in "$ROOT/patches/$name"/*.patch; do
    if ! patch -d "$tmp" -p1 --batch --forward --silent <"$p" >"$LOG_DIR/patch-$name.log" 2>&1; then
      cat "$LOG_DIR/patch-$name.log" >&2
      rm -rf "$tmp"
      die "${p#"$ROOT"/} does not apply to $name $used_version; refresh it against the unpacked tree"
    fi
    say "applied ${p#"$ROOT"/}"
  done
  echo "$name $used_version ${tp_suite[$name]} ($used_how)" >"$tmp/.keel-version"
  source_marker "$name" >"$tmp/.keel-source"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  say "unpacked $name $used_version (Debian ${tp_suite[$name]}, $used_how) into $dest"
}

for name in "${tp_names[@]}"; do
  unpack_source "$name"
done

# The build log names exactly what was built: one line per source tree (TP_DIR/versions.txt keeps it).
for name in "${tp_names[@]}"; do cat "$TP_DIR/$name/.keel-version"; done >"$TP_DIR/versions.txt"
sed 's/^/deps: third-party /' "$TP_DIR/versions.txt"
echo "$key" >"$STAMP"
