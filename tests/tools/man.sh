#!/bin/sh
# man.sh DIR: install the build (PRIDE_TOOLS_DIR) into DIR/prefix with cmake --install,
# then check that every program installed in bin/ has its page in share/man/man1/ and
# that each installed page renders without a single warning: with `man --warnings -l`
# where man-db is installed and with `groff -man -ww -z` where groff is (all warnings
# on), or with `mandoc -T lint -W warning` where mandoc is.
# Exit status 0 on success, 77 (skipped, saying why) when no formatter is installed,
# 1 with the reasons on stderr otherwise.
set -u
dir=$1
prefix=$dir/prefix
fail=0
cmake --install "$PRIDE_TOOLS_DIR" --prefix "$prefix" >"$dir/install.log" 2>&1 ||
    { cat "$dir/install.log" >&2; echo "man.sh: cmake --install failed" >&2; exit 1; }
man1=$prefix/share/man/man1
[ -d "$prefix/bin" ] || { echo "man.sh: nothing installed in bin/" >&2; exit 1; }
tools=0
for prog in "$prefix"/bin/*; do
    name=$(basename "$prog")
    tools=$((tools + 1))
    if [ ! -f "$man1/$name.1" ]; then
        echo "man.sh: $name is installed but has no man page ($name.1)" >&2
        fail=1
    fi
done
echo "$tools programs installed"
checkers=""
command -v man >/dev/null && checkers="$checkers man"
command -v groff >/dev/null && checkers="$checkers groff"
command -v mandoc >/dev/null && checkers="$checkers mandoc"
if [ -z "$checkers" ]; then
    echo "none of man, groff or mandoc is installed: cannot render the pages: skipped"
    exit 77
fi
for page in "$man1"/*.1; do
    for c in $checkers; do
        case $c in
        man) err=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) ;;
        groff) err=$(groff -man -ww -z -Tutf8 "$page" 2>&1) ;;
        mandoc) err=$(mandoc -T lint -W warning "$page" 2>&1) ;;
        esac
        if [ $? -ne 0 ] || [ -n "$err" ]; then
            echo "man.sh: $c warns about $(basename "$page"):" >&2
            echo "$err" >&2
            fail=1
        fi
    done
    if ! grep -q '^\.SH NAME' "$page" || ! grep -q '^\.SH SYNOPSIS' "$page"; then
        echo "man.sh: $(basename "$page") lacks a NAME or SYNOPSIS section" >&2
        fail=1
    fi
done
echo "rendered every page with:$checkers"
exit $fail
