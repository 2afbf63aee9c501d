/// Shells `--generate-completion-script` writes for.
public enum CompletionShell: String, Sendable, CaseIterable {
    case bash, zsh, fish
}

/// Completion scripts built from ``FlagTable``, so a new flag is completed without another edit.
/// Flags complete with one dash (`-input-raw`, as GoReplay's docs write them) or two; values that
/// are paths complete as files; `report` completes as the first word.
enum GoReplayCompletion {
    static let flag = "generate-completion-script"

    /// Flags offered: the table's (old 0.16 spellings too, since deployed configs use them), help and version.
    static var names: [String] { FlagTable.all.map(\.name) + ["help", "version"] }

    static func takesPath(_ spec: FlagSpec) -> Bool {
        spec.kind == .value
            && (spec.valueName.hasPrefix("PATH") || spec.name.hasSuffix("-certificate")
                || spec.name.hasSuffix("-certificate-key") || spec.name == "output-file")
    }

    static func script(for shell: CompletionShell) -> String {
        switch shell {
        case .bash: return bash
        case .zsh: return zsh
        case .fish: return fish
        }
    }

    static var bash: String {
        let paths = FlagTable.all.filter(takesPath).flatMap { ["-\($0.name)", "--\($0.name)"] }
        let values = FlagTable.all.filter { $0.kind == .value && !takesPath($0) }.flatMap {
            ["-\($0.name)", "--\($0.name)"]
        }
        return """
            # bash completion for goreplay (goreplay --generate-completion-script bash), built from its flag table.
            _goreplay() {
                local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
                case "$prev" in
                    \(paths.joined(separator: "|")))
                        COMPREPLY=($(compgen -f -- "$cur")); return ;;
                    \(values.joined(separator: "|")))
                        COMPREPLY=(); return ;;
                esac
                case "$cur" in
                    --*) COMPREPLY=($(compgen -W "\(names.map { "--" + $0 }.joined(separator: " "))" -- "$cur")) ;;
                    -*) COMPREPLY=($(compgen -W "\(names.map { "-" + $0 }.joined(separator: " "))" -- "$cur")) ;;
                    *) if [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=($(compgen -W "report" -- "$cur")); fi ;;
                esac
            }
            complete -o default -F _goreplay goreplay

            """
    }

    static var zsh: String {
        func escaped(_ text: String) -> String {
            var out = ""
            for character in text {
                switch character {
                case "[", "]", ":", "\\": out += "\\" + String(character)
                case "'": out += "'\\''"
                default: out.append(character)
                }
            }
            return out
        }
        var lines = ["#compdef goreplay", "# zsh completion for goreplay, built from its flag table.", "_arguments \\"]
        for spec in FlagTable.all {
            let help = escaped(spec.help.isEmpty ? "same as --\(spec.aliasOf ?? spec.name)" : spec.help)
            let value =
                spec.kind == .bool
                ? "" : takesPath(spec) ? ":path:_files" : ":\(escaped(spec.valueName.lowercased())): "
            for dashes in ["-", "--"] {
                lines.append("  '\(dashes)\(spec.name)\(spec.kind == .bool ? "" : "=")[\(help)]\(value)' \\")
            }
        }
        lines += [
            "  '(- *)'{-h,--help}'[show help]' \\", "  '(- *)'{-version,--version}'[print the version]' \\",
            "  '1::command:(report)'", "",
        ]
        return lines.joined(separator: "\n")
    }

    static var fish: String {
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
        }
        var lines = [
            "# fish completion for goreplay, built from its flag table.",
            "complete -c goreplay -n '__fish_use_subcommand' -a report -d 'compare original and replayed responses'",
        ]
        for spec in FlagTable.all {
            let help = escaped(spec.help.isEmpty ? "same as --\(spec.aliasOf ?? spec.name)" : spec.help)
            let value = spec.kind == .bool ? "" : takesPath(spec) ? " -r -F" : " -x"
            lines.append("complete -c goreplay -o \(spec.name) -l \(spec.name)\(value) -d '\(help)'")
        }
        lines += [
            "complete -c goreplay -s h -l help -d 'show help'",
            "complete -c goreplay -o version -l version -d 'print the version'", "",
        ]
        return lines.joined(separator: "\n")
    }
}
