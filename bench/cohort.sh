#!/usr/bin/env bash
# Onboarding N hires (account + 2 groups + welcome, journaled and verified) against the raw
# baseline: one ldapmodify of an equivalent LDIF plus one SMTP connection sending N messages.
# Both run against fresh slapd and SMTP servers on loopback, in one run; prints both times
# and the ratio onboard/baseline. With `--store postgres`, onboard runs the same cohort a second
# time with the PostgreSQL store (a server started here on loopback, fsync on) on fresh servers,
# and the ratio postgres/file store is printed too (goal: at most 1.3).
#   Usage: bench/cohort.sh [--store postgres] [N] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=files
if [ "${1:-}" = "--store" ]; then STORE=$2; shift 2; fi
case $STORE in files|postgres) ;; *) echo "--store is files or postgres" >&2; exit 2 ;; esac
N=${1:-1000}
JOBS=${2:-8}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
python=/usr/bin/python3; [ -x "$python" ] || python=python3
cargo build --release --quiet
bin=target/release/onboard
ADMIN="cn=admin,dc=example,dc=org"; PW=bench-secret

. bench/lib.sh

start_slapd() { # dir -> sets LDAP_URL
  local d=$1; mkdir -p "$d/db"
  cat > "$d/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 1073741824
suffix "dc=example,dc=org"
rootdn "$ADMIN"
rootpw $PW
directory $d/db
index objectClass,uid,uidNumber,cn,member,memberUid eq
CONF
  slapadd -f "$d/slapd.conf" -l src/backend/directory/example-directory.ldif 2>/dev/null
  local port; port=$(free_port)
  slapd -f "$d/slapd.conf" -h "ldap://127.0.0.1:$port/" -d 0 2>"$d/slapd.log" & pids+=($!)
  LDAP_URL="ldap://127.0.0.1:$port"
  for _ in $(seq 100); do ldapsearch -x -H "$LDAP_URL" -b "" -s base >/dev/null 2>&1 && return; sleep 0.05; done
  echo "slapd did not start" >&2; exit 1
}

start_smtp() { # dir -> sets SMTP_PORT
  local d=$1; mkdir -p "$d"
  SMTP_PORT=$(free_port)
  $python tests/smtp_server.py --eml-only --port "$SMTP_PORT" --dir "$d" 2>/dev/null & pids+=($!)
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$SMTP_PORT") 2>/dev/null && return; sleep 0.05; done
  echo "SMTP server did not start" >&2; exit 1
}


count_entries() { ldapsearch -x -LLL -H "$1" -D "$ADMIN" -w "$PW" -b ou=people,dc=example,dc=org "(objectClass=inetOrgPerson)" dn | grep -c '^dn:' || true; }
count_members() { ldapsearch -x -LLL -o ldif-wrap=no -H "$1" -D "$ADMIN" -w "$PW" -b "cn=$2,ou=groups,dc=example,dc=org" -s base member | grep -c '^member: .*ou=people' || true; }

$python bench/gen_hires.py "$N" "$work/hires.csv"

# (a) onboard, on the store given as environment variables
run_onboard() { # label, then VAR=value for the store -> sets a_* and onboard_s
  local label=$1; shift
  start_slapd "$work/ldap-$label"; start_smtp "$work/mail-$label"
  local t0 t1
  t0=$(date +%s.%N)
  env "$@" ONBOARD_LDAP_URL=$LDAP_URL ONBOARD_LDAP_BIND_DN=$ADMIN \
  ONBOARD_LDAP_PASSWORD=$PW ONBOARD_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" \
    bash -c 'TIMEFORMAT="%U %S"; time "$@" > "$0" 2>/dev/null' "$work/onboard-$label.out" \
    $bin bench/checklist.yaml --hires "$work/hires.csv" --jobs "$JOBS" 2> "$work/onboard-$label.cpu" || true
  t1=$(date +%s.%N)
  onboard_s=$(echo "$t1 - $t0" | bc -l)
  a_entries=$(count_entries "$LDAP_URL"); a_staff=$(count_members "$LDAP_URL" staff); a_research=$(count_members "$LDAP_URL" research)
  a_mail=$(ls "$work/mail-$label"/*.eml 2>/dev/null | wc -l)
  a_ok=$(grep -c ': complete' "$work/onboard-$label.out" || true)
  # Hires whose address is the To: of exactly one message (their welcome, received once).
  a_once=$($python - "$work/hires.csv" "$work/mail-$label" <<'PY'
import collections, csv, email.parser, email.policy, glob, sys
to = collections.Counter()
parser = email.parser.BytesHeaderParser(policy=email.policy.default)
for path in glob.glob(sys.argv[2] + "/*.eml"):
    with open(path, "rb") as f:
        to.update(a.addr_spec for a in parser.parse(f)["To"].addresses)
print(sum(to[r["work_email"]] == 1 for r in csv.DictReader(open(sys.argv[1], encoding="utf-8"))))
PY
)
  read -r a_user a_sys < "$work/onboard-$label.cpu"
  printf -v "line_$label" 'onboard (%s store): %8.2f s  (CPU: %.2f s user, %.2f s system; %d complete, %d entries, %d staff and %d research members, %d messages: passwords + welcomes, %d hires welcomed exactly once)' \
    "$label" "$onboard_s" "$a_user" "$a_sys" "$a_ok" "$a_entries" "$a_staff" "$a_research" "$a_mail" "$a_once"
  [ "$a_ok" -eq "$N" ] && [ "$a_entries" -eq "$N" ] && [ "$a_staff" -eq "$N" ] && [ "$a_mail" -eq $((2 * N)) ] \
    && [ "$a_once" -eq "$N" ] || { echo "${label}: a count is wrong: $a_ok complete, $a_entries entries, $a_staff staff, $a_mail messages, $a_once once" >&2; exit 1; }
}
run_onboard file ONBOARD_STATE_DIR="$work/state"
file_s=$onboard_s
if [ "$STORE" = postgres ]; then
  start_postgres "$work/pg"
  run_onboard postgres ONBOARD_STATE_DIR="$work/state-pg" ONBOARD_STATE_URL="$STATE_URL" \
    ONBOARD_STATE_PASSWORD_FILE="$STATE_PASSWORD_FILE"
  postgres_s=$onboard_s
fi

# (b) the raw baseline: one ldapmodify of an equivalent LDIF, one SMTP connection for N messages
start_slapd "$work/ldap-b"; start_smtp "$work/mail-b"
$python - "$work/hires.csv" "$work/bulk.ldif" "$work/mails.txt" <<'PY'
import csv, sys, base64
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
def attr(k, v):
    return f"{k}:: {base64.b64encode(v.encode()).decode()}" if not v.isascii() else f"{k}: {v}"
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i, r in enumerate(rows):
        uid = r["id"].lower()
        f.write("\n".join([f"dn: uid={uid},ou=people,dc=example,dc=org", "changetype: add",
            "objectClass: inetOrgPerson", "objectClass: posixAccount", f"uid: {uid}",
            attr("cn", f'{r["given_name"]} {r["family_name"]}'), attr("sn", r["family_name"]),
            f'mail: {r["work_email"]}', f"uidNumber: {100000 + i}", "gidNumber: 10000",
            f"homeDirectory: /home/{uid}", "userPassword: {SSHA}placeholder"]) + "\n\n")
    for g in ("staff", "research"):
        f.write(f"dn: cn={g},ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\n")
        f.write("".join(f'member: uid={r["id"].lower()},ou=people,dc=example,dc=org\n' for r in rows) + "-\n\n")
with open(sys.argv[3], "w", encoding="utf-8") as f:
    for r in rows:
        f.write("\t".join([r["work_email"], r["given_name"], r["manager_email"]]) + "\n")
PY
t2=$(date +%s.%N)
ldapmodify -x -H "$LDAP_URL" -D "$ADMIN" -w "$PW" -f "$work/bulk.ldif" > /dev/null
t2m=$(date +%s.%N)
$python - "$SMTP_PORT" "$work/mails.txt" <<'PY'
# The same messages onboard sends per hire: the initial password to the manager, and a welcome
# to the hire (manager in cc) with text and HTML parts of the welcome templates' size.
import smtplib, sys
from email.message import EmailMessage
text = open("templates/welcome.txt.tera", encoding="utf-8").read()
html = open("templates/welcome.html.tera", encoding="utf-8").read()
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
for line in open(sys.argv[2], encoding="utf-8"):
    to, name, manager = line.rstrip("\n").split("\t")
    p = EmailMessage(); p["From"] = "it@example.org"; p["To"] = manager
    p["Subject"] = f"Initial password for {name}"; p.set_content(f"The initial password for {to}: x")
    s.send_message(p)
    m = EmailMessage(); m["From"] = "it@example.org"; m["To"] = to; m["Cc"] = manager
    m["Subject"] = f"Welcome, {name}"
    m.set_content(text.replace("{{ hire.given_name }}", name))
    m.add_alternative(html.replace("{{ hire.given_name }}", name), subtype="html")
    s.send_message(m)
s.quit()
PY
t3=$(date +%s.%N)
b_entries=$(count_entries "$LDAP_URL"); b_staff=$(count_members "$LDAP_URL" staff); b_mail=$(ls "$work/mail-b"/*.eml 2>/dev/null | wc -l)

baseline_s=$(echo "$t3 - $t2" | bc -l)
printf 'hires: %d, jobs: %d\n' "$N" "$JOBS"
echo "$line_file"
[ "$STORE" = postgres ] && echo "$line_postgres"
printf 'baseline: %8.2f s  (%d entries, %d staff members, %d messages; ldapmodify %.2f s, SMTP %.2f s)\n' \
  "$baseline_s" "$b_entries" "$b_staff" "$b_mail" "$(echo "$t2m - $t2" | bc -l)" "$(echo "$t3 - $t2m" | bc -l)"
printf 'ratio onboard/baseline: %.2f\n' "$(echo "$file_s / $baseline_s" | bc -l)"
if [ "$STORE" = postgres ]; then
  printf 'ratio postgres store/file store: %.2f (goal: at most 1.3)\n' "$(echo "$postgres_s / $file_s" | bc -l)"
fi
[ "$b_entries" -eq "$N" ] && [ "$b_mail" -eq $((2 * N)) ] || { echo "a baseline count is wrong: see above" >&2; exit 1; }
