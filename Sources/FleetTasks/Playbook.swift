import Fleet
import Foundation

/// A multi-step recipe from `playbooks/*.yml`, validated at load time; see
/// `docs/playbooks.md` for the format.
public struct Playbook: Sendable, Hashable {
    public var name: String
    public var summary: String
    public var details: String
    /// `changes:` — whether it changes hosts (asks for confirmation in production).
    public var changes: Bool
    /// `respect_data_sync_window:` — refuse inside the window unless `--force`.
    public var respectDataSyncWindow: Bool
    /// `args:` in positional order.
    public var arguments: [PlaybookArgument] = []
    /// `let:` values built from arguments, in order.
    public var lets: [LetValue] = []
    /// `hosts:`: where the task runs instead of the selected hosts.
    public var pin: HostPin?
    /// `runs_once:`: only on the first of its hosts, once per run.
    public var runsOnce = false
    /// `serial:`: one host after another, every step on a host before the next host.
    public var serial = false
    /// `max_hosts:`: refuse a selection of more hosts (fabric-scripts' one-host guards).
    public var maxHosts: Int?
    public var steps: [PlaybookStep]
    /// The file it came from, and the line of its `name:`.
    public var path: String
    public var nameLine: Int?

    /// `puppet.disable:REASON`, `nagios.schedule_downtime:HOST[,MINUTES]`.
    public var usage: String {
        var text = name
        for (index, argument) in arguments.enumerated() {
            let separator = index == 0 ? ":" : ","
            text +=
                argument.defaultValue == nil
                ? separator + argument.name.uppercased() : "[\(separator)\(argument.name.uppercased())]"
        }
        return text
    }

    /// Whether the steps need more than one host task each (pinned steps, calls, serial).
    var needsExpansion: Bool {
        serial || steps.contains { $0.pin != nil || $0.isCall }
    }

    public var descriptor: TaskDescriptor {
        var text = details.isEmpty ? summary : details
        if !arguments.isEmpty {
            text +=
                "\n\nArguments:\n\n"
                + arguments.map { argument in
                    "- `\(argument.name)` (\(argument.kind.rawValue)"
                        + (argument.pattern.map { ", matching `\($0)`" } ?? "")
                        + (argument.defaultValue.map { ", default `\($0)`" } ?? ", required") + ")"
                        + (argument.help.isEmpty ? "" : ": \(argument.help)")
                }.joined(separator: "\n")
        }
        if let pin { text += "\n\nRuns on \(pin), not on the selected hosts." }
        if runsOnce { text += "\n\nRuns once, on the first of its hosts." }
        if serial { text += "\n\nRuns on one host at a time." }
        if let maxHosts {
            text += "\n\nRefuses more than \(maxHosts) host\(maxHosts == 1 ? "" : "s") (select with -H)."
        }
        if respectDataSyncWindow { text += "\n\nRefuses inside the data-sync window unless `--force`." }
        text +=
            "\n\nSteps:\n\n"
            + steps.enumerated().map { "\($0.offset + 1). \($0.element.summary)" }.joined(separator: "\n")
        return TaskDescriptor(
            name: name, usage: usage, summary: summary, details: text, changesHosts: changes,
            source: "playbooks/" + ((path as NSString).lastPathComponent))
    }
}

/// A `let:` value: a template over arguments and built-in names.
public struct LetValue: Sendable, Hashable {
    public var name: String
    public var template: Template
}

/// One step; `condition` is its `when:`.
public struct PlaybookStep: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        /// `run: CMD` as the SSH user; `run_read: CMD` (`readOnly`) declares that CMD only reads.
        case run(CommandTemplate, readOnly: Bool)
        /// `sudo: CMD` through `sudo -n`; `sudo_read: CMD` (`readOnly`) declares that CMD only reads.
        case sudo(CommandTemplate, readOnly: Bool)
        /// `service: {action, name, as}`: alias-resolved; `as` records
        /// `running`/`stopped` (and `AS_name`, the name used) after the action.
        case service(ServiceAction, logicalName: String, as: String?)
        /// `ensure_file: {path, content, mode}`: atomic, only when different.
        case ensureFile(path: Template, content: String, mode: String?)
        /// `read_file: {path, as}`: content without trailing newlines ('' if
        /// missing) and `AS_exists` (`true` or '').
        case readFile(path: Template, as: String)
        /// `read_command: {command, as, sudo}`: stdout without trailing newlines.
        case readCommand(CommandTemplate, as: String, sudo: Bool)
        /// `check: {command, as, sudo, attempts, every, required}`: `as` is `true` when the
        /// command exits 0 (tried up to `attempts` times), else ''. Only a `required` check
        /// that never succeeds fails the host.
        case check(CommandTemplate, as: String?, sudo: Bool, attempts: Int, every: Duration, required: Bool)
        /// `call: {task, args}`: another task, on its own hosts (its pin) or the host this
        /// step is for; arguments are templates over this playbook's values.
        case call(task: String, arguments: [Template])
        /// `wait_for_process: {name, timeout, state}`: sets `procs`.
        case waitForProcess(name: String, timeout: Duration, running: Bool)
        /// `message: TEXT`: appended to the host's report.
        case message(Template)
    }

    public var action: Action
    public var condition: Condition?
    /// `on:`: the hosts this step runs on instead of the host it is for.
    public var pin: HostPin?
    /// Line and column of the step in its file.
    public var line: Int
    public var column: Int = 0

    var isCall: Bool {
        if case .call = action { return true }
        return false
    }

    /// Whether this step can change a host by itself: `run:`, `sudo:`, `ensure_file:` and a service
    /// action other than `status`. The read forms (`run_read:`, `sudo_read:`, `read_command:`,
    /// `check:`, `read_file:`) are the author's declaration that the command only reads. A `call:`
    /// counts as its callee does, which the registry checks once every task is known.
    var canChangeHosts: Bool {
        switch action {
        case .run(_, let readOnly), .sudo(_, let readOnly): !readOnly
        case .ensureFile: true
        case .service(let action, _, _): action.changesHosts
        case .readFile, .readCommand, .check, .call, .waitForProcess, .message: false
        }
    }

    /// The step key it was written with (`sudo`, `sudo_read`, `service` …).
    var kindName: String {
        switch action {
        case .run(_, let readOnly): readOnly ? "run_read" : "run"
        case .sudo(_, let readOnly): readOnly ? "sudo_read" : "sudo"
        case .service: "service"
        case .ensureFile: "ensure_file"
        case .readFile: "read_file"
        case .readCommand: "read_command"
        case .check: "check"
        case .call: "call"
        case .waitForProcess: "wait_for_process"
        case .message: "message"
        }
    }

    /// One line for `help:TASK`.
    var summary: String {
        let base: String
        switch action {
        case .run(let command, let readOnly): base = "run\(readOnly ? " (read-only)" : "") `\(command)`"
        case .sudo(let command, let readOnly): base = "sudo\(readOnly ? " (read-only)" : "") `\(command)`"
        case .service(let action, let name, _): base = "\(action.rawValue) service \(name)"
        case .ensureFile(let path, let content, _): base = "ensure \(path.text) contains \(content.debugDescription)"
        case .readFile(let path, let name): base = "read \(path.text) as \(name)"
        case .readCommand(let command, let name, _): base = "read `\(command)` as \(name)"
        case .check(let command, let name, let sudo, let attempts, let every, let required):
            base =
                "check `\(command)`\(sudo ? " with sudo" : "")"
                + (attempts > 1 ? ", up to \(attempts) times \(DurationText.format(every)) apart" : "")
                + (name.map { " as \($0)" } ?? "") + (required ? " (fails the host if it never succeeds)" : "")
        case .call(let task, let arguments):
            base = "call `\(task)\(arguments.isEmpty ? "" : ":" + arguments.map(\.text).joined(separator: ","))`"
        case .waitForProcess(let name, let timeout, let running):
            base = "wait up to \(DurationText.format(timeout)) for \(running ? "a" : "no") \(name) process"
        case .message(let text): base = "report \"\(text.text)\""
        }
        return base + (pin.map { " on \($0)" } ?? "") + (condition.map { " when `\($0.text)`" } ?? "")
    }
}

/// Text with `{{NAME}}` references, checked against defined names at load time.
public struct Template: Sendable, Hashable {
    public var text: String
    public var references: [String]

    func render(_ values: [String: String]) -> String {
        var result = text
        for name in references { result = result.replacingOccurrences(of: "{{\(name)}}", with: values[name] ?? "") }
        return result
    }
}

/// A `when:` expression: clauses joined by `and`, each `NAME`, `not NAME`,
/// `NAME == 'text'` or `NAME != 'text'`.
public struct Condition: Sendable, Hashable {
    public enum Clause: Sendable, Hashable {
        case truthy(String)
        case falsy(String)
        case equals(String, String)
        case notEquals(String, String)

        var name: String {
            switch self {
            case .truthy(let n), .falsy(let n), .equals(let n, _), .notEquals(let n, _): n
            }
        }
    }

    public var clauses: [Clause]
    public var text: String

    func holds(_ values: [String: String]) -> Bool {
        clauses.allSatisfy { clause in
            switch clause {
            case .truthy(let name): !(values[name] ?? "").isEmpty
            case .falsy(let name): (values[name] ?? "").isEmpty
            case .equals(let name, let literal): (values[name] ?? "") == literal
            case .notEquals(let name, let literal): (values[name] ?? "") != literal
            }
        }
    }

    /// Parses the tiny expression language; `nil` problem text on success.
    static func parse(_ text: String) -> Result<Condition, ConditionError> {
        var clauses: [Clause] = []
        let parts = text.components(separatedBy: " and ")
        for raw in parts {
            let part = raw.trimmingCharacters(in: .whitespaces)
            if let clause = parseClause(part) {
                clauses.append(clause)
            } else {
                return .failure(ConditionError(clause: part))
            }
        }
        return .success(Condition(clauses: clauses, text: text))
    }

    private static func parseClause(_ part: String) -> Clause? {
        for (op, make) in [("==", Clause.equals), ("!=", Clause.notEquals)] {
            let sides = part.components(separatedBy: op)
            if sides.count == 2 {
                let name = sides[0].trimmingCharacters(in: .whitespaces)
                let literal = sides[1].trimmingCharacters(in: .whitespaces)
                guard isVariableName(name), literal.count >= 2, literal.first == "'", literal.last == "'" else {
                    return nil
                }
                let inner = String(literal.dropFirst().dropLast())
                guard !inner.contains("'") else { return nil }
                return make(name, inner)
            }
        }
        if part.hasPrefix("not ") {
            let name = String(part.dropFirst(4)).trimmingCharacters(in: .whitespaces)
            return isVariableName(name) ? .falsy(name) : nil
        }
        return isVariableName(part) ? .truthy(part) : nil
    }
}

struct ConditionError: Error {
    var clause: String
}

/// `[a-z_][a-z0-9_]*`.
func isVariableName(_ name: String) -> Bool {
    guard let first = name.first, first == "_" || ("a"..."z").contains(first) else { return false }
    return name.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
}

/// A playbook that cannot be used, located: `playbooks/x.yml:7:5: message`.
public struct PlaybookError: LocatedYAMLError, Sendable, Hashable, CustomStringConvertible {
    public var location: SourceLocation
    public var problem: Problem

    public init(_ problem: Problem, at location: SourceLocation) {
        self.problem = problem
        self.location = location
    }

    public enum Problem: Sendable, Hashable, CustomStringConvertible {
        /// The file could not be read.
        case unreadable(String)
        /// Not valid YAML.
        case syntax(String)
        /// A key the format does not have; `suggestion` is the nearest valid one.
        case unknownKey(key: String, in: String, suggestion: String?)
        /// A required key is absent.
        case missingKey(key: String, in: String)
        /// A value of the wrong YAML type.
        case wrongType(key: String, expected: String)
        /// A value of the right type that is not acceptable.
        case invalidValue(key: String, value: String, reason: String)
        /// A step with none, or more than one, of the step keys.
        case stepKind(found: [String])
        /// `{{NAME}}` or a `when:` naming a value no earlier step reads.
        case undefinedName(String, defined: [String])
        /// A `when:` that is not in the expression language.
        case badCondition(clause: String)
        /// The playbook's name is a built-in task's or another playbook's.
        case nameTaken(name: String, by: String)
        /// `changes: false` (on `changesLine`) but a step that can change hosts.
        case changesContradicted(step: String, kind: String, changesLine: Int?)

        public var description: String {
            switch self {
            case .unreadable(let reason): return "cannot read playbook: \(reason)"
            case .syntax(let message): return "invalid YAML: \(message)"
            case .unknownKey(let key, let context, let suggestion):
                return "unknown key '\(key)' in \(context)" + NameSuggestions.hint(suggestion.map { [$0] } ?? [])
            case .missingKey(let key, let context): return "missing required key '\(key)' in \(context)"
            case .wrongType(let key, let expected): return "'\(key)' must be \(expected)"
            case .invalidValue(let key, let value, let reason): return "'\(key)': invalid value '\(value)': \(reason)"
            case .stepKind(let found):
                let kinds = PlaybookLoader.stepKinds.joined(separator: ", ")
                return found.isEmpty
                    ? "a step needs one of: \(kinds)"
                    : "a step has exactly one of \(kinds); found \(found.joined(separator: " and "))"
            case .undefinedName(let name, let defined):
                let hint = NameSuggestions.hint(NameSuggestions.near(name, in: defined, limit: 2))
                return
                    "'\(name)' is not defined by an earlier step\(hint); defined here: \(defined.sorted().joined(separator: ", "))"
            case .badCondition(let clause):
                return
                    "cannot read condition '\(clause)': use NAME, not NAME, NAME == 'text' or NAME != 'text', joined by 'and'"
            case .nameTaken(let name, let other):
                return "playbook name '\(name)' is already used by \(other == "built-in" ? "a built-in task" : other)"
            case .changesContradicted(let step, let kind, let line):
                let declared = "the playbook says changes: false" + (line.map { " (line \($0))" } ?? "")
                let readForm =
                    kind == "run" || kind == "sudo"
                    ? ", or, if the command only reads, write it as \(kind)_read:" : ""
                return "this step (\(step)) can change hosts but \(declared): set changes: true\(readForm)"
            }
        }
    }

    public var description: String { "\(location): \(problem)" }
}

/// Playbooks are read with Fleet's ``YAMLTree``, as inventories are; its problems in playbook words.
extension PlaybookError.Problem: YAMLReadProblem {
    /// A repeated key reads "given twice" in playbooks.
    public static func duplicateKey(key: String, firstLine: Int?) -> Self {
        .invalidValue(key: key, value: key, reason: "given twice")
    }

    /// Playbook messages name the expected type only.
    public static func wrongType(path: String, expected: String, found: String) -> Self {
        .wrongType(key: path, expected: expected)
    }

    public static func invalidValue(path: String, value: String, reason: String) -> Self {
        .invalidValue(key: path, value: value, reason: reason)
    }
}
