#!/usr/bin/env bash
# Makes a machine ready for `npm test` / `npm run demo`, from a clean clone:
#   1. Debian packages the tests drive for real (registry, skopeo, umoci, FUSE, ...)
#   2. node_modules (npm ci when missing or stale vs package-lock.json)
#   3. /dev/fuse exists; the FUSE addon is built (required) and the gzip scanner addon (optional)
#   4. build (turbo, cached)
# Quiet and fast (seconds) when everything is already there; says what it does otherwise.
# Exits non-zero with a reason when it cannot finish (e.g. packages missing and not root).
# Environment: BOOTSTRAP_SKIP_BUILD=1 skips step 4; BOOTSTRAP_VERBOSE=1 reports every check.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { printf 'bootstrap: %s\n' "$*" >&2; }
verbose() { if [[ "${BOOTSTRAP_VERBOSE:-}" == 1 ]]; then say "$@"; fi; }
die() {
  say "ERROR: $*"
  exit 1
}

# --- 1. Debian packages -------------------------------------------------------------
# Each requirement: "<package>:<probe>", probe = a command on PATH, or lib:<soname>.
REQUIREMENTS=(
  "libfuse3-dev:file:/usr/include/fuse3/fuse_lowlevel.h" # packages/native-fuse builds against libfuse 3
  "fuse3:fusermount3"                    # rootless mounts (the FUSE addon runs fusermount3) and detaching stale mounts (`fusermount3 -uz`)
  "docker-registry:docker-registry"      # the real registry tests push to (testkit/registry.ts)
  "skopeo:skopeo"                        # copies images between OCI layouts and registries
  "umoci:umoci"                          # reference unpacker the mount is compared against
  "zstd:zstd"                            # zstd layers in fixtures
  "attr:getfattr"                        # reads xattrs in readTree()
  "mmdebstrap:mmdebstrap"                # builds the realistic Debian test image
  "apache2-utils:htpasswd"               # bcrypt htpasswd for registry auth tests
  "openssl:openssl"                      # certificates for TLS/token registry tests
  "tar:tar"                              # GNU tar (Debian image build)
  "debian-archive-keyring:file:/usr/share/keyrings/debian-archive-keyring.gpg" # mmdebstrap verifies bookworm
  "g++:g++"                              # node-gyp toolchain for packages/native-fuse and native-zran (step 3)
  "make:make"
  "binutils:readelf"                     # apps/cli first-run test compares clip's ELF parsing with readelf (also a g++ dependency)
  "python3:python3"
  "runc:runc"                            # clip run's default OCI runtime (packages/runtime); its tests run real containers
  "tini:file:/usr/bin/tini-static"       # static init for clip run containers: forwards signals to the command, reaps zombies
  "busybox-static:file:/bin/busybox"     # static busybox: the runtime tests' small image (packages/runtime/test)
  "containerd:containerd"                # packages/snapshotter end-to-end tests: containerd with clip as proxy snapshotter (+ ctr)
  "stargz-snapshotter:ctr-remote"        # ctr-remote image rpull sends the remote-layer labels
)

have() {
  local probe=$1
  case "$probe" in
    # Not `grep -q`: it exits at the first match, ldconfig dies of SIGPIPE and pipefail
    # turns that into "missing" at random.
    lib:*) "$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | grep -F "${probe#lib:}" >/dev/null ;;
    file:*) [[ -e "${probe#file:}" ]] ;;
    *) command -v "$probe" >/dev/null 2>&1 ;;
  esac
}

missing=()
for requirement in "${REQUIREMENTS[@]}"; do
  package=${requirement%%:*}
  probe=${requirement#*:}
  if have "$probe"; then
    verbose "ok: $package ($probe)"
  else
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  say "missing Debian packages: ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    die "cannot install them: not root and no password-less sudo. Run as root: apt-get install -y ${missing[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} with your package manager"
  apt_log=$(mktemp)
  trap 'rm -f "$apt_log"' EXIT
  say "apt-get update"
  "${SUDO[@]}" apt-get update -qq >"$apt_log" 2>&1 || { cat "$apt_log" >&2; die "apt-get update failed"; }
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1 ||
    { cat "$apt_log" >&2; die "apt-get install ${missing[*]} failed"; }
  for requirement in "${REQUIREMENTS[@]}"; do
    have "${requirement#*:}" || die "${requirement%%:*} still missing after apt-get install"
  done
fi

# --- 2. node and node_modules --------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node not found (need Node >= 20)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || die "Node $(node -v) is too old (need >= 20)"

# Fresh when the lock file is unchanged since our last install (sha256 stamp), or when npm's
# own record of the install (node_modules/.package-lock.json) is newer than the lock file
# (someone ran `npm install` after editing it).
STAMP=node_modules/.clip-bootstrap-lock.sha256
lock_sha=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp() { sha256sum package-lock.json | cut -d' ' -f1 >"$STAMP"; }
if [[ ! -f node_modules/.package-lock.json ]]; then
  say "installing node modules (npm ci)"
  if ! npm ci --no-audit --no-fund --loglevel=error >/dev/null; then
    say "npm ci failed; trying npm install"
    npm install --no-audit --no-fund --loglevel=error >/dev/null || die "npm install failed"
  fi
  stamp
elif [[ -f $STAMP && "$(cat "$STAMP")" == "$lock_sha" ]]; then
  verbose "ok: node_modules matches package-lock.json"
elif [[ ! package-lock.json -nt node_modules/.package-lock.json ]]; then
  verbose "ok: node_modules installed after the last package-lock.json change"
  stamp
else
  # Not `npm ci` here: it deletes node_modules first, under whatever else is running from
  # this tree. `npm install` converges to the same lock file incrementally.
  say "package-lock.json changed since the last install: npm install"
  npm install --no-audit --no-fund --loglevel=error >/dev/null || die "npm install failed"
  stamp
fi

# --- 3. native addons and FUSE --------------------------------------------------------
# An addon is rebuilt when missing or older than its source.
stale_addon() {
  local dir=$1 node=$1/build/Release/$2.node
  [[ ! -f $node || -n $(find "$dir/native" "$dir/binding.gyp" -newer "$node" -print -quit 2>/dev/null) ]]
}

# packages/native-fuse: the mounter's FUSE binding (libfuse 3 low-level API). Required.
fuse_addon=packages/native-fuse
if stale_addon "$fuse_addon" clip_fuse; then
  say "building the FUSE addon ($fuse_addon)"
  fuse_out=$(node scripts/build-native-addon.mjs "$fuse_addon" clip_fuse 2>&1) ||
    die "the FUSE addon did not build (needs libfuse3-dev, g++, make): $(tail -n 3 <<<"$fuse_out")"
fi
(cd "$fuse_addon" && node -e "require('./build/Release/clip_fuse.node')") || die "the FUSE addon does not load"
verbose "ok: FUSE addon loads"

if [[ ! -c /dev/fuse ]]; then
  modprobe fuse >/dev/null 2>&1 || true
  if [[ ! -c /dev/fuse && $(id -u) -eq 0 ]]; then mknod -m 666 /dev/fuse c 10 229 2>/dev/null || true; fi
  [[ -c /dev/fuse ]] || die "/dev/fuse is missing: FUSE mounts cannot work here (load the fuse module, or run the container with --device /dev/fuse --cap-add SYS_ADMIN)"
fi
# Rootless mounts: fusermount3 opens /dev/fuse as the calling user, so it must be 0666 (the
# kernel's and Debian's default; container runtimes often create it 0600).
if [[ $(id -u) -eq 0 && $(stat -c %a /dev/fuse) != 666 ]]; then
  chmod 666 /dev/fuse 2>/dev/null && verbose "made /dev/fuse mode 0666 for rootless mounts" ||
    say "warning: /dev/fuse is not mode 0666: clip mount works only as root"
fi
verbose "ok: /dev/fuse"

# --- 3b. native gzip scanner (optional) -----------------------------------------------
# packages/native-zran: makes gzip indexing several times faster. Rebuilt when missing or
# older than its source; if it cannot be built the indexer uses the portable scanner.
zran=packages/native-zran
if stale_addon "$zran" clip_zran; then
  say "building the native gzip scanner ($zran)"
  if ! zran_out=$(node scripts/build-native-addon.mjs "$zran" clip_zran 2>&1); then
    say "WARNING: native gzip scanner not built, indexing will use the slower portable scanner: $(tail -n 1 <<<"$zran_out")"
  fi
fi
verbose "ok: native gzip scanner step"

# --- 4. build ------------------------------------------------------------------------
if [[ "${BOOTSTRAP_SKIP_BUILD:-}" != 1 ]]; then
  export TURBO_TELEMETRY_DISABLED=1 TURBO_NO_UPDATE_NOTIFIER=1 DO_NOT_TRACK=1
  build_log=$(mktemp)
  if ! npx --no-install turbo run build --output-logs=errors-only >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    die "build failed (npx turbo run build)"
  fi
  rm -f "$build_log"
  verbose "ok: build"
fi

verbose "ready ($ROOT)"
