# <prologue.sh changed as below, then firewalld_service.sh, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# 'firewalld service' on mail1: apply. Rendered by smtps-iredmail: every value below was quoted when
# @@ -21 +21 @@
# -KIND='zone membership'
# +KIND='firewalld service'
# @@ -289,6 +288,0 @@
# -[6 lines of prologue.sh: 289 to 294]
# </prologue.sh>
XML=$(cat <<'SMTPS_SERVICE_XML'
<?xml version="1.0" encoding="utf-8"?>
<service>
  <short>Enable SMTPS</short>
  <description>Enable SMTPS.</description>
  <port protocol="tcp" port="465"/>
</service>
SMTPS_SERVICE_XML
)
MODE=644
if [ -f "$FILE" ] && printf '%s\n' "$XML" | cmp -s - "$FILE" && [ -e "$S/applied" ] && cmp -s "$FILE" "$S/applied"
then
    if [ "$(stat -c %a "$FILE")" != "$MODE" ]; then
        chmod "$MODE" "$FILE"
        say "firewalld service $NAME: mode $MODE put back"
    else
        say "firewalld service $NAME: up to date"
    fi
    exit 0
fi
ports_of() {  # ports_of FILE: its ports as firewalld reads them (includes count as a port: they add others)
    "$FWPY" -I -S - "$1" <<'SMTPS_SERVICE_PORTS'
import sys
from xml.parsers import expat
ports, protocols, includes = set(), [], []
def start(tag, attrib):
    if tag == "port" and attrib["port"] != "":
        ports.add(f"{attrib['port']}/{attrib['protocol']}")
    elif tag in ("port", "protocol"):
        name = attrib["protocol" if tag == "port" else "value"]
        protocols.extend([] if name in protocols else [name])
    elif tag == "include" and attrib["service"] not in includes:
        includes.append(attrib["service"])
    elif tag == "source-port":
        ports.add(f"source-port:{attrib['port']}/{attrib['protocol']}")
def refuse(name, *declared):
    raise ValueError(f"it declares the entity {name}: not read")
parser = expat.ParserCreate()
parser.StartElementHandler, parser.EntityDeclHandler = start, refuse
with open(sys.argv[1], "rb") as file:
    parser.ParseFile(file)
found = sorted(ports) + [f"include:{name}" for name in includes] + [f"protocol:{name}" for name in protocols]
print(" ".join(found) or "none")
SMTPS_SERVICE_PORTS
}
if [ ! -d "$S" ]; then
    for defined in "$FILE" "$BUILTIN"; do
        [ -e "$defined" ] || continue
        ports=$(ports_of "$defined" 2>&1) || fail "cannot read the service definition $defined: $ports"
        [ "$ports" = "465/tcp" ] || fail "firewalld service $NAME is already defined in $defined for $ports: a file of ours would replace it in every zone that uses it; choose another firewalldService; nothing was changed"
        break
    done
fi
on_failure undo
keep_for_run "$FILE"
if [ ! -d "$S" ]; then
    FIRST=yes
    begin_state "$S"
    if [ -e "$FILE" ]; then cp -p "$FILE" "$S.new/orig"; else : > "$S.new/absent"; fi
    commit_state "$S"
fi
keep_before
printf '%s\n' "$XML" > "$FILE.smtps-tmp"
chmod "$MODE" "$FILE.smtps-tmp"
WROTE=yes
mv -f "$FILE.smtps-tmp" "$FILE"
guarded_reload
put "$FILE" "$S/applied"
left_for_run "$FILE"
on_failure ""
rm -f "$S.before"
say "firewalld service $NAME: written; firewalld reloaded"
confirm_needed

