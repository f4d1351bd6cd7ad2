#!/usr/bin/env bash
# Developer entry point: bootstrap Odoo 18.0 beside this addon, run it, test it.
#
#   tools/dev.sh run     create/update the demo database and serve it on :8069
#   tools/dev.sh test    ruff, plain tests, then the suite under pytest-odoo and
#                        under Odoo's own runner, each on a fresh database
#   tools/dev.sh setup   only the bootstrap (venv, Odoo source, PostgreSQL, config)
#   tools/dev.sh config  only write the Odoo configuration (no venv, no PostgreSQL)
#   tools/dev.sh odoo …  odoo-bin with the project's config, e.g. `odoo shell -d DB`
#   tools/dev.sh screenshots  run the persona tours and save their screens in
#                   docs/screenshots (the README's images), on the test database
#   tools/dev.sh broker  find or start the MQTT broker `run` uses; prints host:port
#   tools/dev.sh telematics-key [SOURCE]  print a new API key of a telematics source
#                   of the run database (default: the demo source)
#
# Environment (all optional):
#   ODOO_SRC        an Odoo 18.0 source tree (default: $CAS_CACHE/odoo-18.0,
#                   shallow-cloned from $ODOO_GIT_URL when missing)
#   ODOO_GIT_URL    where to clone Odoo from (default: upstream odoo/odoo)
#   CAS_CACHE       cache folder (default: ${XDG_CACHE_HOME:-~/.cache}/construction_asset_sync)
#   CAS_DB          demo database name (default: construction_asset_sync)
#   CAS_TEST_DB     test database name (default: construction_asset_sync_test); Odoo's
#                   runner uses ${CAS_TEST_DB}_odoo_runner
#   CAS_HTTP_PORT   port of `run` (default: 8069)
#   CAS_GEVENT_PORT port of the websocket worker with CAS_WORKERS > 0 (default: the
#                   HTTP port + 3, Odoo's 8072 beside 8069), so that two servers can run
#   CAS_WORKERS     Odoo's HTTP workers of `run` (default: 0, threaded)
#   CAS_EMULATOR_PORT  port of the Odyssee emulator `run` starts and the demo backend
#                   is pointed at (default: 8765)
#   CAS_STATE_DIR   where the config, addons link and logs go (default: <repo>/.dev)
#   PYTHON          interpreter for the virtualenv (default: python3, must be 3.10-3.12)
#   PGHOST PGPORT PGUSER PGPASSWORD   the PostgreSQL server to use
#   MQTT_HOST MQTT_PORT   the MQTT broker `run` points the demo source at (default: the
#                   local one on $CAS_LOCAL_MQTT_PORT, else a private Mosquitto on a free port)
#   CAS_LOCAL_MQTT_PORT  where the local broker is looked for (default: 1883)
#   CAS_PROCESSING_WORKERS  telematics processing workers `run` starts, each on a shard
#                   of its own (--shard K/N; default: 2; 0 leaves processing to the
#                   scheduled action)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ADDON=construction_asset_sync
CAS_CACHE=${CAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/construction_asset_sync}
ODOO_GIT_URL=${ODOO_GIT_URL:-https://github.com/odoo/odoo.git}
ODOO_BRANCH=18.0
CAS_DB=${CAS_DB:-construction_asset_sync}
CAS_TEST_DB=${CAS_TEST_DB:-construction_asset_sync_test}
CAS_HTTP_PORT=${CAS_HTTP_PORT:-8069}
CAS_GEVENT_PORT=${CAS_GEVENT_PORT:-$((CAS_HTTP_PORT + 3))}
CAS_EMULATOR_PORT=${CAS_EMULATOR_PORT:-8765}
CAS_LOCAL_MQTT_PORT=${CAS_LOCAL_MQTT_PORT:-1883}
CAS_PROCESSING_WORKERS=${CAS_PROCESSING_WORKERS:-2}
STATE_DIR=${CAS_STATE_DIR:-$REPO_ROOT/.dev}
ADDONS_LINK_DIR=$STATE_DIR/addons
ODOO_CONF=$STATE_DIR/odoo.conf
PRIVATE_PG=$CAS_CACHE/postgresql
PRIVATE_MQTT=$CAS_CACHE/mosquitto
BACKGROUND_PIDS=()

say() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[dev] error:\033[0m %s\n' "$*" >&2; exit 1; }

need_packages() {
    # Installs Debian packages when root, else tells the user the exact command.
    local missing=("$@")
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing system packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        die "missing system packages; run: sudo apt-get install -y ${missing[*]}"
    fi
}

find_python() {
    PYTHON=${PYTHON:-python3}
    command -v "$PYTHON" >/dev/null || need_packages python3
    PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    case $PY_VERSION in
        3.10|3.11|3.12) ;;
        *) die "Odoo 18.0 needs Python 3.10 to 3.12, $PYTHON is $PY_VERSION (set PYTHON=python3.12, say)" ;;
    esac
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        need_packages "python$PY_VERSION-venv"
    fi
}

ensure_odoo_source() {
    if [ -n "${ODOO_SRC:-}" ]; then
        [ -f "$ODOO_SRC/odoo-bin" ] || die "ODOO_SRC=$ODOO_SRC is not an Odoo source tree (no odoo-bin there)"
    else
        ODOO_SRC=$CAS_CACHE/odoo-$ODOO_BRANCH
        if [ ! -f "$ODOO_SRC/odoo-bin" ]; then
            command -v git >/dev/null || need_packages git
            say "cloning Odoo $ODOO_BRANCH from $ODOO_GIT_URL into $ODOO_SRC (shallow, a few minutes)"
            rm -rf "$ODOO_SRC.partial"
            mkdir -p "$CAS_CACHE"
            if ! git clone --quiet --depth 1 --branch "$ODOO_BRANCH" "$ODOO_GIT_URL" "$ODOO_SRC.partial"; then
                rm -rf "$ODOO_SRC.partial"
                die "no Odoo source found and the clone from $ODOO_GIT_URL failed.
    Provide an Odoo 18.0 tree with ODOO_SRC=/path/to/odoo (the folder holding odoo-bin),
    or put one at $CAS_CACHE/odoo-$ODOO_BRANCH, or set ODOO_GIT_URL to a reachable mirror."
            fi
            mv "$ODOO_SRC.partial" "$ODOO_SRC"
        fi
    fi
    ODOO_SRC=$(cd "$ODOO_SRC" && pwd)
    local series
    series=$(sed -n "s/^version_info = (\([0-9]*\), \([0-9]*\).*/\1.\2/p" "$ODOO_SRC/odoo/release.py")
    [ "$series" = "$ODOO_BRANCH" ] || die "$ODOO_SRC is Odoo $series, this addon needs $ODOO_BRANCH"
}

ensure_venv() {
    VENV=${CAS_VENV:-$CAS_CACHE/venv-py$PY_VERSION}
    [ -x "$VENV/bin/python" ] || { say "creating virtualenv $VENV"; "$PYTHON" -m venv "$VENV"; }
    local wanted stamp
    wanted=$("$VENV/bin/python" "$REPO_ROOT/tools/odoo_requirements.py" "$ODOO_SRC/requirements.txt")
    stamp=$( { echo "$wanted"; cat "$REPO_ROOT/requirements.txt" "$REPO_ROOT/requirements-dev.txt"; echo "$ODOO_SRC"; } | sha256sum | cut -c1-16)
    if [ "$(cat "$VENV/.cas-stamp" 2>/dev/null)" != "$stamp" ]; then
        say "installing Python dependencies into $VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
        echo "$wanted" > "$VENV/odoo-requirements.txt"
        "$VENV/bin/python" -m pip install --quiet -r "$VENV/odoo-requirements.txt" \
            -r "$REPO_ROOT/requirements.txt" -r "$REPO_ROOT/requirements-dev.txt"
        "$VENV/bin/python" - "$ODOO_SRC" <<'EOF'
import pathlib, site, sys
pathlib.Path(site.getsitepackages()[0], "odoo-src.pth").write_text(sys.argv[1] + "\n")
EOF
        echo "$stamp" > "$VENV/.cas-stamp"
    fi
}

pg_answers() { psql -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
    command -v psql >/dev/null || need_packages postgresql-client
    if [ -z "${PGHOST:-}${PGPORT:-}" ] && [ -f "$PRIVATE_PG/data/PG_VERSION" ]; then
        start_private_cluster
    fi
    pg_answers && return 0
    if [ -n "${PGHOST:-}${PGPORT:-}${PGUSER:-}" ]; then
        die "PostgreSQL at PGHOST=${PGHOST:-<socket>} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-$USER} does not answer"
    fi
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses root: use the distribution's cluster instead.
        command -v pg_ctlcluster >/dev/null || need_packages postgresql
        local version
        version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
        [ -n "$version" ] || die "postgresql is installed but has no cluster in /etc/postgresql"
        say "starting the system PostgreSQL $version cluster"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 20); do pg_isready -q && break; sleep 0.5; done
        if ! pg_answers; then
            su postgres -c "createuser --superuser $(id -un)" 2>/dev/null || true
        fi
    else
        start_private_cluster
    fi
    pg_answers || die "could not reach or start PostgreSQL; set PGHOST/PGPORT/PGUSER to a server you can use"
}

start_private_cluster() {
    local bindir
    bindir=$(command -v initdb >/dev/null && dirname "$(readlink -f "$(command -v initdb)")" || ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -x "$bindir/initdb" ] || need_packages postgresql
    bindir=${bindir:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)}
    mkdir -p "$PRIVATE_PG/run"
    if [ ! -f "$PRIVATE_PG/data/PG_VERSION" ]; then
        say "no PostgreSQL answers: creating a private cluster in $PRIVATE_PG"
        "$bindir/initdb" -A trust -U "$(id -un)" -D "$PRIVATE_PG/data" >"$PRIVATE_PG/initdb.log" 2>&1 \
            || { cat "$PRIVATE_PG/initdb.log" >&2; die "initdb failed (log: $PRIVATE_PG/initdb.log)"; }
    fi
    export PGHOST=$PRIVATE_PG/run PGPORT=5432
    if ! pg_answers; then
        say "starting the private PostgreSQL cluster (socket in $PGHOST)"
        "$bindir/pg_ctl" -D "$PRIVATE_PG/data" -l "$PRIVATE_PG/server.log" -w \
            -o "-k $PRIVATE_PG/run -c listen_addresses=''" start >/dev/null
    fi
}

tcp_answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

mosquitto_bin() { command -v mosquitto 2>/dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; }; }

ensure_mqtt_broker() {
    # Sets MQTT_HOST and MQTT_PORT: the broker they name, else the local one (1883),
    # else a private Mosquitto (installed first when root), like PostgreSQL above.
    if [ -n "${MQTT_HOST:-}${MQTT_PORT:-}" ]; then
        MQTT_HOST=${MQTT_HOST:-127.0.0.1} MQTT_PORT=${MQTT_PORT:-1883}
        tcp_answers "$MQTT_HOST" "$MQTT_PORT" || die "no MQTT broker answers at MQTT_HOST=$MQTT_HOST MQTT_PORT=$MQTT_PORT"
        return 0
    fi
    MQTT_HOST=127.0.0.1 MQTT_PORT=$CAS_LOCAL_MQTT_PORT
    tcp_answers "$MQTT_HOST" "$MQTT_PORT" && return 0
    [ -n "$(mosquitto_bin)" ] || need_packages mosquitto
    start_private_mosquitto
}

start_private_mosquitto() {
    # A broker of our own: persistent sessions, no limit on what they queue while a
    # consumer is away (Mosquitto keeps 1,000 by default), anonymous on 127.0.0.1 only.
    mkdir -p "$PRIVATE_MQTT"
    if [ -f "$PRIVATE_MQTT/port" ] && kill -0 "$(cat "$PRIVATE_MQTT/mosquitto.pid" 2>/dev/null)" 2>/dev/null \
        && tcp_answers 127.0.0.1 "$(cat "$PRIVATE_MQTT/port")"; then
        MQTT_PORT=$(cat "$PRIVATE_MQTT/port")
        return 0
    fi
    MQTT_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$PRIVATE_MQTT/mosquitto.conf" <<CONF
user $(id -un)
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $PRIVATE_MQTT/
max_queued_messages 0
pid_file $PRIVATE_MQTT/mosquitto.pid
log_dest file $PRIVATE_MQTT/mosquitto.log
CONF
    echo "$MQTT_PORT" > "$PRIVATE_MQTT/port"
    say "no MQTT broker on 127.0.0.1:$CAS_LOCAL_MQTT_PORT: starting a private Mosquitto on port $MQTT_PORT ($PRIVATE_MQTT)"
    "$(mosquitto_bin)" -c "$PRIVATE_MQTT/mosquitto.conf" -d
    for _ in $(seq 50); do tcp_answers 127.0.0.1 "$MQTT_PORT" && return 0; sleep 0.1; done
    die "the private Mosquitto did not start (log: $PRIVATE_MQTT/mosquitto.log)"
}

write_config() {
    mkdir -p "$ADDONS_LINK_DIR" "$CAS_CACHE/filestore"
    # Odoo names a module after its folder; the checkout may be called anything.
    ln -sfn "$REPO_ROOT" "$ADDONS_LINK_DIR/$ADDON"
    # A git checkout holds addons in addons/ and odoo/addons/; the source tarball
    # and the Debian package only in odoo/addons/. Odoo keeps an entry that does
    # not exist, and then every HTTP request answers 500: list existing folders only.
    local addons_path=$ADDONS_LINK_DIR dir
    for dir in "$ODOO_SRC/addons" "$ODOO_SRC/odoo/addons"; do
        if [ -d "$dir" ]; then addons_path=$addons_path,$dir; fi
    done
    [ -d "$ODOO_SRC/odoo/addons/base" ] || die "$ODOO_SRC has no odoo/addons/base: not an Odoo source tree"
    cat > "$ODOO_CONF.tmp" <<EOF
[options]
addons_path = $addons_path
data_dir = $CAS_CACHE/filestore
db_host = ${PGHOST:-False}
db_port = ${PGPORT:-False}
db_user = ${PGUSER:-False}
db_password = ${PGPASSWORD:-False}
http_interface = 127.0.0.1
http_port = $CAS_HTTP_PORT
gevent_port = $CAS_GEVENT_PORT
list_db = False
max_cron_threads = ${CAS_CRON_THREADS:-1}
workers = ${CAS_WORKERS:-0}
EOF
    mv "$ODOO_CONF.tmp" "$ODOO_CONF"
}

bootstrap() {
    find_python
    ensure_odoo_source
    ensure_venv
    ensure_postgres
    write_config
}

odoo_bin() {
    # A subcommand (shell, scaffold, ...) must come before the options.
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
        local subcommand=$1
        shift
        "$VENV/bin/python" "$ODOO_SRC/odoo-bin" "$subcommand" -c "$ODOO_CONF" "$@"
    else
        "$VENV/bin/python" "$ODOO_SRC/odoo-bin" -c "$ODOO_CONF" "$@"
    fi
}

db_exists() { [ "$(psql -d postgres -Atqc "select 1 from pg_database where datname = '$1'")" = 1 ]; }

addon_fingerprint() {
    (cd "$REPO_ROOT" && find . -path ./.dev -prune -o -path ./.git -prune -o -type f \
        \( -name '*.py' -o -name '*.xml' -o -name '*.csv' \) -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

install_checked() {
    # Installs (or updates) the addon and fails on any error or warning it logs.
    local db=$1 mode=$2 log
    log=$STATE_DIR/install-$db.log
    shift 2
    if [ "$mode" = -i ]; then say "installing $ADDON in database $db"; else say "updating $ADDON in database $db"; fi
    odoo_bin -d "$db" "$mode" "$ADDON" --stop-after-init --log-level=warn "$@" >"$log" 2>&1 \
        || { tail -n 40 "$log" >&2; die "odoo-bin $mode $ADDON failed (log: $log)"; }
    # Upstream's own warnings (docutils, deprecations) are not ours to fail on;
    # anything about our addon, its models, views or access rules is, including
    # what Odoo says through Python's warnings about our models and files, and
    # about any field (a precompute it turns off, a missing recursive=True): an
    # install of Odoo's own modules here logs none, and the addon's fields on
    # inherited models are named by those models.
    if grep -E ' (ERROR|CRITICAL) | WARNING \S+ (odoo\.addons\.construction_asset_sync|odoo\.modules\.loading|odoo\.models|odoo\.fields|odoo\.tools\.(view_validation|convert)|odoo\.addons\.base\.models\.ir_(ui_view|model|rule|actions)) | WARNING \S+ py\.warnings: .*(construction\.[a-z]|addons/construction_asset_sync/|UserWarning: Field )' "$log" >&2; then
        die "installing $ADDON logged the problems above (log: $log)"
    fi
}

cmd_run() {
    bootstrap
    local fingerprint stamp_file=$STATE_DIR/$CAS_DB.fingerprint
    fingerprint=$(addon_fingerprint)
    if ! db_exists "$CAS_DB"; then
        install_checked "$CAS_DB" -i
        echo "$fingerprint" > "$stamp_file"
    elif [ "$(cat "$stamp_file" 2>/dev/null)" != "$fingerprint" ]; then
        install_checked "$CAS_DB" -u
        echo "$fingerprint" > "$stamp_file"
    fi
    point_demo_at_emulator
    ensure_mqtt_broker
    point_demo_at_broker
    trap stop_background EXIT
    start_emulator
    start_mqtt_consumer
    start_processing_workers
    say "Odoo is starting on http://localhost:$CAS_HTTP_PORT  (database $CAS_DB, login admin / password admin)"
    # -d alone serves only that database. A --db-filter would make Odoo list the
    # server's databases on every request without a session (every telematics
    # request): a quarter of a single alert's receipt.
    "$VENV/bin/python" "$ODOO_SRC/odoo-bin" -c "$ODOO_CONF" -d "$CAS_DB" "$@"
}

point_demo_at_emulator() {
    # The demo data say http://127.0.0.1:8765, the emulator's default port; the
    # emulator of `run` listens on CAS_EMULATOR_PORT. One psql call, changing the
    # demo backend and the demo Odyssee system only while they still point at a
    # local port and at another one than that.
    local url=http://127.0.0.1:$CAS_EMULATOR_PORT changed
    changed=$(psql -d "$CAS_DB" -Atq -v ON_ERROR_STOP=1 <<SQL
WITH backend AS (
    UPDATE construction_odyssee_backend b
       SET url = '$url/api', write_date = now() AT TIME ZONE 'UTC'
      FROM ir_model_data d
     WHERE d.module = '$ADDON' AND d.name = 'demo_odyssee_backend' AND b.id = d.res_id
       AND b.url ~ '^http://127\.0\.0\.1:[0-9]+/api$' AND b.url <> '$url/api'
 RETURNING b.id
), system AS (
    UPDATE construction_external_system s
       SET base_url = '$url', write_date = now() AT TIME ZONE 'UTC'
      FROM ir_model_data d
     WHERE d.module = '$ADDON' AND d.name = 'demo_system_odyssee' AND s.id = d.res_id
       AND s.base_url ~ '^http://127\.0\.0\.1:[0-9]+$' AND s.base_url <> '$url'
 RETURNING s.id
)
SELECT (SELECT count(*) FROM backend) + (SELECT count(*) FROM system);
SQL
    )
    [ "$changed" = 0 ] || say "demo Odyssee backend now points at the emulator on $url/api"
}

start_emulator() {
    # The demo's Odyssee tenant: a local emulator, stopped with Odoo.
    if (exec 3<>"/dev/tcp/127.0.0.1/$CAS_EMULATOR_PORT") 2>/dev/null; then
        say "port $CAS_EMULATOR_PORT is taken: assuming an Odyssee emulator already runs there"
        return 0
    fi
    (cd "$REPO_ROOT" && exec "$VENV/bin/python" -m odyssee_emulator \
        --port "$CAS_EMULATOR_PORT" --scenario demo --complete-after 30 --pdf-delay 20) \
        >"$STATE_DIR/emulator.log" 2>&1 &
    BACKGROUND_PIDS+=($!)
    say "Odyssee emulator on http://127.0.0.1:$CAS_EMULATOR_PORT/api (domain DEMO, user api, password secret; log $STATE_DIR/emulator.log)"
}

stop_background() {
    local pid
    for pid in "${BACKGROUND_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}

point_demo_at_broker() {
    # The demo source consumes MQTT from 127.0.0.1:1883; point it at the broker found.
    local changed
    changed=$(psql -d "$CAS_DB" -Atq -v ON_ERROR_STOP=1 <<SQL
WITH source AS (
    UPDATE construction_telematics_source s
       SET mqtt_host = '$MQTT_HOST', mqtt_port = $MQTT_PORT, write_date = now() AT TIME ZONE 'UTC'
      FROM ir_model_data d
     WHERE d.module = '$ADDON' AND d.name = 'demo_telematics_source' AND s.id = d.res_id
       AND s.mqtt_enabled AND (s.mqtt_host, s.mqtt_port) IS DISTINCT FROM ('$MQTT_HOST', $MQTT_PORT)
 RETURNING s.id
)
SELECT count(*) FROM source;
SQL
    )
    [ "$changed" = 0 ] || say "demo telematics source now consumes MQTT from $MQTT_HOST:$MQTT_PORT"
}

start_mqtt_consumer() {
    # The MQTT consumer of every source marked "Consume from MQTT", stopped with Odoo.
    local addons_path
    addons_path=$(sed -n 's/^addons_path = //p' "$ODOO_CONF")
    "$VENV/bin/python" "$ODOO_SRC/odoo-bin" --addons-path="$addons_path" telematics_mqtt \
        -c "$ODOO_CONF" -d "$CAS_DB" --consumer-name "dev-$(hostname)" \
        >"$STATE_DIR/mqtt-consumer.log" 2>&1 &
    BACKGROUND_PIDS+=($!)
    say "MQTT consumer on $MQTT_HOST:$MQTT_PORT (topics fleet/v1/demo/<device>/readings|alerts|iso15143|status; log $STATE_DIR/mqtt-consumer.log)"
}

start_processing_workers() {
    # Telematics processing woken by LISTEN/NOTIFY, off Odoo's cron threads; stopped with Odoo.
    local addons_path number
    addons_path=$(sed -n 's/^addons_path = //p' "$ODOO_CONF")
    for number in $(seq "$CAS_PROCESSING_WORKERS"); do
        "$VENV/bin/python" "$ODOO_SRC/odoo-bin" --addons-path="$addons_path" telematics_worker \
            -c "$ODOO_CONF" -d "$CAS_DB" --name "dev-$(hostname)-$number" \
            --shard "$number/$CAS_PROCESSING_WORKERS" \
            >"$STATE_DIR/telematics-worker-$number.log" 2>&1 &
        BACKGROUND_PIDS+=($!)
    done
    [ "$CAS_PROCESSING_WORKERS" = 0 ] \
        || say "$CAS_PROCESSING_WORKERS telematics processing worker(s) (log $STATE_DIR/telematics-worker-<n>.log)"
}

fresh_database() {
    # Drops a database and its filestore; --force ends stray sessions (PostgreSQL 13+).
    if db_exists "$1"; then dropdb --force "$1"; fi
    rm -rf "$CAS_CACHE/filestore/filestore/$1"
}

run_odoo_runner() {
    # The suite the way OCA CI and Odoo.sh run it: install into a fresh database
    # with --test-enable; at_install tests run during the install, post_install
    # ones after it. Sets RUNNER_PASSED and RUNNER_FAILED (failures and errors).
    local db=$1 log=$2 report
    fresh_database "$db"
    say "Odoo's own runner (odoo-bin -i $ADDON --test-enable --test-tags /$ADDON, database $db, log $log)"
    odoo_bin -d "$db" -i "$ADDON" --test-enable --test-tags "/$ADDON" --stop-after-init \
        --log-level=test >"$log" 2>&1 || true
    # At the end of such a run Odoo logs, for each database:
    #   ... odoo.tests.result: F failed, E error(s) of N tests when loading database 'db'
    report=$(sed -n "s/.* odoo\.tests\.result: \([0-9]*\) failed, \([0-9]*\) error(s) of \([0-9]*\) tests when loading database '$db'.*/\1 \2 \3/p" "$log" | tail -n1)
    if [ -n "$report" ]; then
        local f e n
        read -r f e n <<<"$report"
        RUNNER_FAILED=$((f + e))
        RUNNER_PASSED=$((n > f + e ? n - f - e : 0))
    else
        # No report: Odoo stopped before the end of the run.
        RUNNER_PASSED=0
        RUNNER_FAILED=$(grep -cE ' (ERROR|CRITICAL) ' "$log" || true)
        [ "$RUNNER_FAILED" -gt 0 ] || RUNNER_FAILED=1
    fi
}

ensure_browser() {
    # The persona tours run in headless Chromium, which Odoo finds on the PATH
    # (google-chrome, chromium, chromium-browser); Odoo drives it through the
    # websocket-client module. Missing either, the tours would be skipped:
    # install them instead.
    local browser
    for browser in google-chrome chromium chromium-browser google-chrome-stable; do
        command -v "$browser" >/dev/null && break
        browser=
    done
    [ -n "$browser" ] || need_packages chromium
    if ! "$VENV/bin/python" -c 'import websocket' 2>/dev/null; then
        say "installing websocket-client (Odoo drives Chromium with it)"
        "$VENV/bin/python" -m pip install --quiet "websocket-client>=1.6"
    fi
}

cmd_test() {
    bootstrap
    # The MQTT tests start private Mosquitto brokers of their own.
    [ -n "$(mosquitto_bin)" ] || need_packages mosquitto mosquitto-clients
    ensure_browser
    say "ruff"
    "$VENV/bin/ruff" check "$REPO_ROOT"
    "$VENV/bin/ruff" format --check "$REPO_ROOT"
    say "plain-Python tests (no Odoo needed)"
    ODOO_SRC=$ODOO_SRC "$VENV/bin/python" -m unittest discover -q -s "$REPO_ROOT/tools/tests" \
        -t "$REPO_ROOT/tools/tests"
    # The protocol modules and the emulator import no odoo: tested from the repository root.
    (cd "$REPO_ROOT" && "$VENV/bin/python" -m unittest discover -q -s protocols/tests -t .)
    fresh_database "$CAS_TEST_DB"
    install_checked "$CAS_TEST_DB" -i
    say "Odoo test suite (pytest-odoo against database $CAS_TEST_DB)"
    local pytest_status=0 pytest_problem= pytest_log=$STATE_DIR/pytest-odoo.log
    # The path goes through the addons symlink: pytest-odoo derives the module
    # name (odoo.addons.construction_asset_sync) from the folder name. Odoo logs
    # into a file (pytest-odoo's default keeps only critical lines): what the
    # server and the browser of a failed tour did is there to read.
    rm -f "$pytest_log"
    "$VENV/bin/python" -m pytest -p no:cacheprovider \
        --odoo-config="$ODOO_CONF" --odoo-database="$CAS_TEST_DB" --odoo-http \
        --odoo-log-level=info --odoo-extra "logfile=$pytest_log" \
        "$@" "$ADDONS_LINK_DIR/$ADDON/tests" || pytest_status=$?
    case $pytest_status in
        0) say "pytest-odoo: all tests passed" ;;
        5) pytest_problem="pytest collected no test: the suite did not run" ;;
        *) pytest_problem="the test suite failed under pytest-odoo (pytest exit $pytest_status)" ;;
    esac
    if [ -n "$pytest_problem" ]; then
        say "$pytest_problem; Odoo's log of the run: $pytest_log, its warnings and errors:"
        grep -E ' (WARNING|ERROR|CRITICAL) ' "$pytest_log" 2>/dev/null | cut -c1-300 | tail -n 80 >&2
    fi

    # The same suite again under Odoo's own runner, which runs it differently:
    # one process holding the registry lock, at_install tests inside the install.
    local runner_log=$STATE_DIR/odoo-runner.log problems=()
    run_odoo_runner "${CAS_TEST_DB}_odoo_runner" "$runner_log"
    [ -z "$pytest_problem" ] || problems+=("$pytest_problem")
    [ "$RUNNER_FAILED" -eq 0 ] || problems+=("$RUNNER_FAILED test(s) failed or errored under Odoo's runner")
    [ $((RUNNER_PASSED + RUNNER_FAILED)) -gt 0 ] || problems+=("Odoo's runner ran no test")
    if grep -qE ' (ERROR|CRITICAL) ' "$runner_log"; then
        problems+=("Odoo's runner logged errors:")
        problems+=("$(grep -E ' (ERROR|CRITICAL) ' "$runner_log" | cut -c1-300)")
    fi
    if [ ${#problems[@]} -gt 0 ]; then
        if [ "${problems[*]}" != "$pytest_problem" ]; then
            say "end of $runner_log:"
            tail -n 60 "$runner_log" >&2
        fi
        printf '\033[1;31m[dev] error:\033[0m %s\n' "${problems[@]}" >&2
        echo "odoo-runner: $RUNNER_PASSED passed, $RUNNER_FAILED failed"
        exit 1
    fi
    say "Odoo's runner: all tests passed"
    echo "odoo-runner: $RUNNER_PASSED passed, $RUNNER_FAILED failed"
}

cmd_screenshots() {
    bootstrap
    ensure_browser
    if db_exists "$CAS_TEST_DB"; then install_checked "$CAS_TEST_DB" -u; else install_checked "$CAS_TEST_DB" -i; fi
    say "persona tours, screenshots into $REPO_ROOT/docs/screenshots"
    CAS_SCREENSHOTS_DIR=$REPO_ROOT/docs/screenshots "$VENV/bin/python" -m pytest -p no:cacheprovider -q \
        --odoo-config="$ODOO_CONF" --odoo-database="$CAS_TEST_DB" --odoo-http \
        "$ADDONS_LINK_DIR/$ADDON/tests/test_persona_tours.py"
}

case ${1:-} in
    run) shift; cmd_run "$@" ;;
    screenshots) shift; cmd_screenshots ;;
    broker) ensure_mqtt_broker; echo "$MQTT_HOST:$MQTT_PORT" ;;
    test) shift; cmd_test "$@" ;;
    setup) bootstrap; say "ready: ODOO_SRC=$ODOO_SRC venv=$VENV config=$ODOO_CONF" ;;
    config)
        ensure_odoo_source
        # The socket of the private cluster, should setup have made one; not started here.
        if [ -z "${PGHOST:-}${PGPORT:-}" ] && [ -f "$PRIVATE_PG/data/PG_VERSION" ]; then
            export PGHOST=$PRIVATE_PG/run PGPORT=5432
        fi
        write_config; say "wrote $ODOO_CONF" ;;
    odoo) shift; bootstrap; odoo_bin "$@" ;;
    telematics-key)
        shift; bootstrap
        db_exists "$CAS_DB" || die "no database $CAS_DB yet: run 'bash tools/dev.sh run' first"
        CAS_SOURCE_NAME=${1:-} odoo_bin shell -d "$CAS_DB" --no-http --log-level=warn \
            < "$REPO_ROOT/tools/telematics_key.py" 2>/dev/null | grep -E '^(API key|no telematics)' ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
