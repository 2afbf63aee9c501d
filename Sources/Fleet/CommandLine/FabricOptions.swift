import Foundation

/// Fabric 1's `fab` options, as far as they need more than swift-argument-parser gives:
/// spellings to rewrite or refuse before parsing, bare-seconds timeouts, `--set` and the
/// `--hide`/`--show` output levels. docs/fabric-compat.md lists every option.
public enum FabricOptions {
    /// Options refused because they would weaken security or have no meaning here, with the
    /// reason and what to do instead (one line each).
    public static let refused: [(spellings: [String], takesValue: Bool, reason: String)] = [
        (
            ["-A", "--forward-agent"], false,
            "agent forwarding is not supported: libssh2 1.10 can ask for it but drops the auth-agent@openssh.com"
                + " channels the host opens back; run 'ssh -A HOST' yourself for the step that needs your agent"
        ),
        (
            ["-D", "--disable-known-hosts"], false,
            "govuk-fab always checks host keys; add the host's key to known_hosts (ssh-keyscan, then check the fingerprint)"
        ),
        (
            ["-p", "--password"], true,
            "passwords on the command line end up in shell history and ps; use a key (-i PATH) or your ssh-agent"
        ),
        (
            ["-I", "--initial-password-prompt"], false,
            "govuk-fab does not use passwords; use a key (-i PATH) or your ssh-agent"
        ),
        (
            ["--initial-sudo-password-prompt"], false,
            "govuk-fab runs sudo non-interactively (sudo -n); give the login NOPASSWD sudo for the commands it runs"
        ),
        (
            ["--sudo-password"], true,
            "govuk-fab runs sudo non-interactively (sudo -n); give the login NOPASSWD sudo for the commands it runs"
        ),
        (
            ["-f", "--fabfile"], true,
            "there is no fabfile: tasks are built in or playbooks (playbooks/, GOVUK_FAB_PLAYBOOK_DIR)"
        ),
        (
            ["-c", "--config"], true,
            "there is no ~/.fabricrc: settings come from inventories/ENVIRONMENT.yml (or --inventory FILE)"
        ),
        (
            ["-s", "--shell"], true,
            "commands run in the login shell of the remote user; put 'bash -c ...' in the command if you need another"
        ),
        (
            ["--gss-auth", "--gss-deleg", "--gss-kex"], false,
            "GSS-API (Kerberos) is not supported by libssh2; use a key or your ssh-agent"
        ),
        (
            ["--skip-unknown-tasks"], false,
            "every task is checked before anything runs; remove or correct the unknown task (see --list)"
        ),
    ]

    /// Rewrites Fabric spellings swift-argument-parser cannot express and refuses the options in
    /// ``refused``. `-P N` (govuk-fab's old spelling) becomes `-P -z N`; arguments after `--`
    /// are left alone, behind ``remainderMarker``.
    public static func normalise(_ arguments: [String]) throws(FabricOptionError) -> [String] {
        var result: [String] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument == "--" {
                result += ["--", remainderMarker] + arguments[(index + 1)...]
                break
            }
            let spelling = argument.hasPrefix("--") ? String(argument.prefix { $0 != "=" }) : argument
            if let entry = refused.first(where: { $0.spellings.contains(spelling) }) {
                throw FabricOptionError(option: spelling, reason: entry.reason)
            }
            if argument == "-P" || argument == "--parallel", index + 1 < arguments.endIndex,
                Int(arguments[index + 1]) != nil
            {
                result += ["-P", "-z", arguments[index + 1]]
                index += 2
                continue
            }
            if argument.hasPrefix("--parallel=") {
                result += ["-P", "-z", String(argument.dropFirst("--parallel=".count))]
                index += 1
                continue
            }
            result.append(argument)
            index += 1
        }
        return result
    }

    /// Put after `--` by ``normalise(_:)`` so the words after it, which swift-argument-parser
    /// appends to the positional words, can be told apart (argv cannot hold a NUL).
    public static let remainderMarker = "\u{0}--"

    /// Fabric's `-t`/`-T` take bare seconds (`60`, `2.5`); govuk-fab also takes durations (`5m`).
    public static func seconds(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let whole = Int64(trimmed), whole >= 0, whole < 1_000_000_000 { return .seconds(whole) }
        if trimmed.first?.isASCIIDigit == true, let value = Double(trimmed), value >= 0, value < 1e9 {
            return .milliseconds(Int64((value * 1000).rounded()))
        }
        return DurationText.parse(trimmed)
    }

    /// Fabric's `--set KEY=VALUE,KEY2,KEY3=` (`\,` and `\=` escape): a key without `=` is `True`,
    /// as Fabric set it. Repeated `--set` options are read in order; a later key wins.
    public static func settings(_ values: [String]) throws(FabricOptionError) -> [String: String] {
        var settings: [String: String] = [:]
        for text in values {
            let arguments: [FabricCommandLine.Argument]
            do {
                arguments = try FabricCommandLine.splitArguments(text)
            } catch {
                throw FabricOptionError(option: "--set", reason: "'\(text)': \(error)")
            }
            for argument in arguments {
                if let keyword = argument.keyword {
                    settings[keyword.name] = keyword.value
                } else if FabricCommandLine.isIdentifier(argument.text) {
                    settings[argument.text] = "True"
                } else {
                    let key = argument.text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
                    throw FabricOptionError(
                        option: "--set",
                        reason: "'\(key)' is not a setting name (letters, digits and '_'), in '\(text)'")
                }
            }
        }
        return settings
    }
}

/// A refused or malformed Fabric option: `govuk-fab: error: -D: govuk-fab always checks …`.
public struct FabricOptionError: Error, Sendable, Hashable, CustomStringConvertible {
    public var option: String
    public var reason: String

    public init(option: String, reason: String) {
        self.option = option
        self.reason = reason
    }

    public var description: String { "\(option): \(reason)" }
}

/// Fabric's output levels for `--hide` and `--show`, applied to govuk-fab's events.
///
/// `running` is the per-host "run:" line, `stdout`/`stderr` the hosts' output, `status` the
/// run's opening line, `warnings` the runner's notices, `debug` the log. Per-host results and the
/// summary are always shown (a hidden failure would hide a host's result), so hiding `aborts`,
/// `exceptions` or `user` is refused.
public struct OutputLevels: Sendable, Hashable {
    /// Levels that can be hidden or shown.
    public enum Level: String, Sendable, Hashable, CaseIterable {
        case status, running, stdout, stderr, warnings, debug
    }

    /// Levels currently shown.
    public private(set) var shown: Set<Level>

    /// Fabric's defaults: everything but debug.
    public init(shown: Set<Level> = Set(Level.allCases).subtracting([.debug])) {
        self.shown = shown
    }

    /// Fabric's aliases, expanded as Fabric 1.8 did.
    static let aliases: [String: [Level]] = [
        "everything": [.status, .running, .stdout, .stderr, .warnings],
        "output": [.stdout, .stderr],
        "commands": [.stdout, .running],
    ]

    /// Levels that exist in Fabric but are never hidden here.
    static let alwaysShown: Set<String> = ["aborts", "exceptions", "user"]

    /// Applies `--show` then `--hide` values (comma-separated level names), as Fabric did.
    public static func parse(show: [String], hide: [String]) throws(FabricOptionError) -> OutputLevels {
        var levels = OutputLevels()
        for (option, values, isShow) in [("--show", show, true), ("--hide", hide, false)] {
            for value in values {
                for name in value.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
                where !name.isEmpty {
                    let expanded: [Level]
                    if let level = Level(rawValue: name) {
                        expanded = [level]
                    } else if let alias = aliases[name] {
                        expanded = alias
                    } else if alwaysShown.contains(name) {
                        if isShow { continue }
                        throw FabricOptionError(
                            option: option,
                            reason: "'\(name)' cannot be hidden: errors and each host's result are always shown")
                    } else {
                        let known = Level.allCases.map(\.rawValue) + aliases.keys.sorted() + alwaysShown.sorted()
                        throw FabricOptionError(
                            option: option,
                            reason: "unknown output level '\(name)'"
                                + NameSuggestions.hint(NameSuggestions.near(name, in: known, limit: 3))
                                + "; levels: " + known.joined(separator: ", "))
                    }
                    for level in expanded {
                        if isShow { levels.shown.insert(level) } else { levels.shown.remove(level) }
                    }
                }
            }
        }
        return levels
    }

    /// Whether `level` is shown.
    public func shows(_ level: Level) -> Bool { shown.contains(level) }

    /// Whether `event` is printed at these levels.
    public func shows(_ event: FleetEvent) -> Bool {
        switch event {
        case .runStarted: return shows(.status)
        case .taskStarted: return shows(.running)
        case .output(_, let stream, _, _): return shows(stream == .stdout ? .stdout : .stderr)
        case .notice: return shows(.warnings)
        case .hostFinished, .summary: return true
        }
    }
}
