# SPDX-License-Identifier: MIT
# bash completion for corral, installed as bash-completion's completions/corral: verbs, options and their
# known values, files and directories where an option takes one, the worker command after --, and the names
# of the running instances (from `corral list`). The options are read from the binary's own --help each time,
# so they never drift from it. Plain bash: no bash-completion helper functions are needed.

# "OPTION METAVAR" per line (METAVAR empty for a flag), long and short, for running a pool or `check`: the
# option lines of `corral --help` ("  -c --config FILE   Read ..."; one space before a metavar, two or
# more before the description).
_corral_pool_options() {
        "$1" --help 2>/dev/null | awk '
                /^ +(-[A-Za-z] +)?--[a-z]/ {
                        s = $0; short = ""
                        sub(/^ +/, "", s)
                        if (length($0) - length(s) > 6) next
                        if (s ~ /^-[A-Za-z] /) { short = substr(s, 1, 2); s = substr(s, 4); sub(/^ +/, "", s) }
                        long = s; sub(/ .*/, "", long)
                        rest = substr(s, length(long) + 1); meta = ""
                        if (rest ~ /^ [^ ]/) { meta = substr(rest, 2); sub(/ .*/, "", meta) }
                        print long, meta
                        if (short != "") print short, meta
                }'
}

# The same for client verb $2, from `corral VERB --help`: the options on the verb's usage line
# ("corral status [--json] [NAME]", "corral drain [--wait] [NAME]"), those every verb takes ("Every one takes
# --control PATH ... and --timeout DURATION") and --help.
_corral_client_options() {
        "$1" "$2" --help 2>/dev/null | awk -v verb="$2" '
                function options(line,    m) {
                        while (match(line, /--[a-z][a-z0-9-]*( [A-Z][A-Z]*)?/)) {
                                m = substr(line, RSTART, RLENGTH)
                                print (m ~ / / ? m : m " ")
                                line = substr(line, RSTART + RLENGTH)
                        }
                }
                match($0, /corral [a-z|]+/) {
                        n = split(substr($0, RSTART + 7, RLENGTH - 7), vs, "|")
                        for (i = 1; i <= n; i++)
                                if (vs[i] == verb) options(substr($0, RSTART + RLENGTH))
                }
                /^Every one takes/ { options($0) }
                END { print "--help " }'
}

# Values of --log-level, from the help line "--log-level LEVEL   debug, info, ... or err (default: info)".
_corral_log_levels() {
        "$1" --help 2>/dev/null | awk '
                /--log-level / {
                        s = $0; sub(/.*--log-level +[A-Z]+ +/, "", s); sub(/ *\(.*/, "", s); gsub(/,/, " ", s)
                        n = split(s, w, " ")
                        for (i = 1; i <= n; i++) if (w[i] != "or") print w[i]
                }'
}

# The running instances' names; a frozen instance makes list wait at most --timeout for it, not the default.
_corral_names() {
        "$1" list --timeout 1s 2>/dev/null | awk 'NR > 1 { print $1 }'
}

_corral() {
        local cur=${COMP_WORDS[COMP_CWORD]} prev="" bin=${COMP_WORDS[0]} verb="" prefix="" table="" meta=""
        local verbs="check list status reload recycle drain undrain upgrade"
        local i w positionals=0 dashdash=0 control=0 first=1 line
        local -a opts=()
        local -A metavar=()
        COMPREPLY=()

        bin=$(type -P -- "${bin/#\~/$HOME}") || return 0

        # --opt=value arrives as "--opt" "=" "value" when = is in COMP_WORDBREAKS (the default), as one word
        # otherwise.
        if [[ $cur == "=" ]]; then
                prev=${COMP_WORDS[COMP_CWORD - 1]}
                cur=""
        elif ((COMP_CWORD > 2)) && [[ ${COMP_WORDS[COMP_CWORD - 1]} == "=" ]]; then
                prev=${COMP_WORDS[COMP_CWORD - 2]}
        elif [[ $cur == --*=* ]]; then
                prev=${cur%%=*}
                prefix=$prev=
                cur=${cur#*=}
        elif ((COMP_CWORD > 0)); then
                prev=${COMP_WORDS[COMP_CWORD - 1]}
        fi

        if ((COMP_CWORD > 1)) && [[ " $verbs " == *" ${COMP_WORDS[1]} "* ]]; then
                verb=${COMP_WORDS[1]}
        fi
        if [[ -z $verb || $verb == check ]]; then
                table=$(_corral_pool_options "$bin")
        else
                table=$(_corral_client_options "$bin" "$verb")
        fi
        while read -r w line; do
                [[ -n $w ]] && metavar[$w]=$line
        done <<<"$table"
        [[ -n $verb ]] && first=2

        # What comes before the word being completed: --, --control, positional arguments.
        for ((i = first; i < COMP_CWORD; i++)); do
                w=${COMP_WORDS[i]}
                if [[ $w == -- ]]; then
                        dashdash=$i
                        break
                fi
                [[ $w == --control || $w == --control=* ]] && control=1
                if [[ $w == -* && $w != *=* ]]; then
                        # An option that takes a value swallows the next word (and a "=" before it).
                        if [[ -n ${metavar[$w]:-} || ${COMP_WORDS[i + 1]:-} == "=" ]]; then
                                [[ ${COMP_WORDS[i + 1]:-} == "=" ]] && ((++i))
                                ((++i))
                        fi
                        continue
                fi
                [[ $w == "=" ]] && continue
                ((++positionals))
        done

        if ((dashdash)); then
                # The worker command, then its arguments.
                if ((COMP_CWORD == dashdash + 1)); then
                        mapfile -t COMPREPLY < <(compgen -c -- "$cur")
                else
                        compopt -o filenames 2>/dev/null
                        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                fi
                return 0
        fi

        # The value of the option before the cursor.
        [[ $prev == -* ]] && meta=${metavar[$prev]:-}
        if [[ -n $meta ]]; then
                case $prev in
                --log-level)
                        mapfile -t COMPREPLY < <(compgen -W "$(_corral_log_levels "$bin")" -- "$cur") ;;
                -c | --config | --pid-file | --control)
                        compopt -o filenames 2>/dev/null
                        mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
                --cgroup-root)
                        compopt -o filenames 2>/dev/null
                        mapfile -t COMPREPLY < <(compgen -d -- "$cur"; compgen -W none -- "$cur") ;;
                --exec-start)
                        mapfile -t COMPREPLY < <(compgen -c -- "$cur") ;;
                --stop-signal)
                        mapfile -t COMPREPLY < <(compgen -A signal -- "$cur") ;;
                --relay-signals)
                        mapfile -t COMPREPLY < <(compgen -A signal -- "$cur"; compgen -W none -- "$cur") ;;
                *)
                        # A metavar that lists its words ("notify|exec|delay", "N|auto|auto-K"): the
                        # lowercase ones. Anything else (ADDRESS, DURATION, N, ...) has nothing to offer.
                        if [[ $meta == *"|"* ]]; then
                                mapfile -t COMPREPLY < <(compgen -W "$(tr '|' '\n' <<<"$meta" |
                                        grep -x '[a-z][a-z-]*')" -- "$cur")
                        fi ;;
                esac
                if [[ -n $prefix ]]; then
                        COMPREPLY=("${COMPREPLY[@]/#/$prefix}")
                fi
                return 0
        fi

        if [[ $cur == -* ]]; then
                for w in "${!metavar[@]}"; do
                        [[ $w == --* ]] && opts+=("$w")
                done
                [[ -z $verb || $verb == check ]] && opts+=(--)
                mapfile -t COMPREPLY < <(compgen -W "${opts[*]}" -- "$cur")
                return 0
        fi

        if ((COMP_CWORD == 1)); then
                mapfile -t COMPREPLY < <(compgen -W "$verbs" -- "$cur")
                return 0
        fi

        # A client verb's NAME: after recycle's SLOT, first for the others; none with --control.
        case $verb in
        status | reload | drain | undrain | upgrade)
                ((positionals == 0 && !control)) &&
                        mapfile -t COMPREPLY < <(compgen -W "$(_corral_names "$bin")" -- "$cur") ;;
        recycle)
                ((positionals == 1 && !control)) &&
                        mapfile -t COMPREPLY < <(compgen -W "$(_corral_names "$bin")" -- "$cur") ;;
        esac
        return 0
}

complete -F _corral corral
