/// Parses the Fabric 1 command-line grammar: the words after the environment.
///
/// - `name` or `name:a,b,key=value`: a task. Arguments split at unescaped commas; an argument
///   is a keyword argument when the text before its first unescaped `=` is an identifier.
///   `\,`, `\=` and `\\` stand for `,`, `=` and `\`; a backslash before any other character
///   is kept as written (as Fabric 1 did), and a backslash at the very end is an error.
/// - `host=`, `hosts=A;B`, `role=`, `roles=A;B` and `exclude_hosts=A;B` are not passed to the task:
///   they become its own hosts, roles and exclusions (``TaskInvocation/hosts``), as in Fabric 1.
/// - Free-form tasks (``defaultFreeFormTasks``: `do`, `sdo`) take everything after the first
///   `:` as one command; only `\,` is turned into `,` (for Fabric compatibility), so
///   `sdo:'echo a,b'` runs `echo a,b` rather than failing on the comma. A trailing run of the
///   host keywords above is stripped from the command and applied (`sdo:'cmd',hosts=cache-2`).
/// - `puppet_class:`, `class:`, `node_type:`, `application:` with comma-separated values, and
///   `all`, are selectors.
public enum FabricCommandLine {
    /// Tasks whose whole argument text is one shell command.
    public static let defaultFreeFormTasks: Set<String> = ["do", "sdo"]

    /// Selector words and whether they take values.
    public static let selectorNames = ["puppet_class", "class", "node_type", "application", "all"]

    /// Parses `words` in order.
    ///
    /// - Parameters:
    ///   - freeFormTasks: task names whose argument is one free-form command.
    ///   - indexOffset: added to word indexes in errors (e.g. 1 when word 0 was the environment).
    public static func parse(
        _ words: [String], freeFormTasks: Set<String> = defaultFreeFormTasks, indexOffset: Int = 0
    ) throws(CommandLineError) -> [CommandWord] {
        var result: [CommandWord] = []
        for (index, word) in words.enumerated() {
            do {
                result.append(try parseWord(word, freeFormTasks: freeFormTasks))
            } catch {
                throw CommandLineError(index: index + indexOffset, word: word, problem: error)
            }
        }
        return result
    }

    /// Parses one word.
    public static func parseWord(
        _ word: String, freeFormTasks: Set<String> = defaultFreeFormTasks
    ) throws(CommandLineError.Problem) -> CommandWord {
        let name: String
        let argumentText: String?
        if let colon = word.firstIndex(of: ":") {
            name = String(word[..<colon])
            argumentText = String(word[word.index(after: colon)...])
        } else {
            name = word
            argumentText = nil
        }
        guard !name.isEmpty else { throw .emptyTaskName }

        if selectorNames.contains(name) {
            return .selector(try parseSelector(name: name, argumentText: argumentText))
        }
        guard isValidTaskName(name) else { throw .invalidTaskName(name) }
        guard let argumentText, !argumentText.isEmpty else {
            return .task(TaskInvocation(name: name, raw: word))
        }
        var own = OwnHosts()
        if freeFormTasks.contains(name) {
            // A trailing run of host keywords is stripped and applied, so `sdo:'cmd',hosts=a` runs
            // `cmd` on `a` only; `\,` keeps a comma that would otherwise start one.
            var segments = commandSegments(argumentText)
            var trailing: [TaskKeyword] = []
            while let last = segments.last, let keyword = hostKeyword(in: last) {
                trailing.insert(keyword, at: 0)
                segments.removeLast()
            }
            for keyword in trailing { try own.apply(keyword) }
            let command = segments.joined(separator: ",").replacingOccurrences(of: "\\,", with: ",")
            guard !command.trimmingCharacters(in: .whitespaces).isEmpty else { throw .emptyCommand(task: name) }
            return .task(
                TaskInvocation(
                    name: name, positional: [command], hosts: own.hosts, roles: own.roles,
                    excludeHosts: own.excludeHosts,
                    raw: word))
        }
        var positional: [String] = []
        var keywords: [TaskKeyword] = []
        for argument in try splitArguments(argumentText) {
            if let keyword = argument.keyword {
                if hostKeywords.contains(keyword.name) {
                    try own.apply(keyword)
                } else {
                    keywords.append(keyword)
                }
            } else {
                positional.append(argument.text)
            }
        }
        return .task(
            TaskInvocation(
                name: name, positional: positional, keywords: keywords, hosts: own.hosts, roles: own.roles,
                excludeHosts: own.excludeHosts, raw: word))
    }

    /// Fabric 1's per-task keywords that choose the task's hosts instead of being passed to it.
    public static let hostKeywords: Set<String> = ["host", "hosts", "role", "roles", "exclude_hosts"]

    /// A task's own hosts, roles and exclusions, as Fabric 1's `parse_arguments` builds them:
    /// a later `host`/`hosts` replaces an earlier one (likewise roles and exclusions), and each
    /// `;`-separated name is trimmed.
    struct OwnHosts {
        var hosts: [String] = []
        var roles: [String] = []
        var excludeHosts: [String] = []

        mutating func apply(_ keyword: TaskKeyword) throws(CommandLineError.Problem) {
            let names =
                keyword.name == "host" || keyword.name == "role"
                ? [keyword.value.trimmingCharacters(in: .whitespaces)]
                : keyword.value.split(separator: ";", omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(in: .whitespaces) }
            // Fabric would try to connect to a host named ""; an empty name is always a slip.
            guard !names.contains("") else { throw .emptyHostKeyword(keyword.name) }
            switch keyword.name {
            case "host", "hosts": hosts = names
            case "role", "roles": roles = names
            default: excludeHosts = names
            }
        }
    }

    /// Splits a free-form command at commas not preceded by a backslash, keeping escapes as written.
    static func commandSegments(_ text: String) -> [String] {
        var segments: [String] = []
        var current = ""
        var previous: Character?
        for character in text {
            if character == ",", previous != "\\" {
                segments.append(current)
                current = ""
            } else {
                current.append(character)
            }
            previous = character
        }
        segments.append(current)
        return segments
    }

    /// The host keyword a free-form segment consists of, if it is exactly `KEY=VALUE` with a host key.
    static func hostKeyword(in segment: String) -> TaskKeyword? {
        guard let arguments = try? splitArguments(segment), arguments.count == 1,
            let keyword = arguments[0].keyword, hostKeywords.contains(keyword.name)
        else { return nil }
        return keyword
    }

    static func parseSelector(name: String, argumentText: String?) throws(CommandLineError.Problem) -> Selector {
        if name == "all" {
            guard argumentText == nil || argumentText == "" else { throw .selectorTakesNoValue(name) }
            return .all
        }
        guard let argumentText, !argumentText.isEmpty else { throw .selectorNeedsValue(name) }
        let values = try splitArguments(argumentText).map(\.text)
        guard !values.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) else {
            throw .emptySelectorValue(name)
        }
        switch name {
        case "puppet_class": return .puppetClass(values)
        case "class": return .nodeClass(values)
        case "node_type": return .nodeType(values)
        default: return .application(values)
        }
    }

    /// `[A-Za-z_][A-Za-z0-9_.-]*`, not ending in `.`.
    static func isValidTaskName(_ name: String) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first == "_", name.last != "." else {
            return false
        }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }
    }

    static func isIdentifier(_ text: some StringProtocol) -> Bool {
        guard let first = text.first, first.isASCII, first.isLetter || first == "_" else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    /// One argument after escape processing.
    struct Argument {
        var text: String
        var keyword: TaskKeyword?
    }

    /// Splits at unescaped commas and finds each argument's first unescaped `=`.
    static func splitArguments(_ text: String) throws(CommandLineError.Problem) -> [Argument] {
        var arguments: [Argument] = []
        var current: [Character] = []
        var firstEquals: Int? // offset in `current` of the first unescaped "="
        var iterator = Array(text)[...]
        func finish() {
            let text = String(current)
            if let equals = firstEquals, isIdentifier(String(current[..<equals])) {
                let keyword = TaskKeyword(String(current[..<equals]), String(current[(equals + 1)...]))
                arguments.append(Argument(text: text, keyword: keyword))
            } else {
                arguments.append(Argument(text: text))
            }
            current = []
            firstEquals = nil
        }
        while let character = iterator.popFirst() {
            switch character {
            case "\\":
                guard let next = iterator.first else { throw .trailingBackslash }
                if next == "," || next == "=" || next == "\\" {
                    current.append(next)
                    iterator.removeFirst()
                } else {
                    current.append(character)
                }
            case ",":
                finish()
            case "=":
                if firstEquals == nil { firstEquals = current.count }
                current.append(character)
            default:
                current.append(character)
            }
        }
        finish()
        return arguments
    }
}

/// A command-line word that cannot be parsed, with which word and why.
public struct CommandLineError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Index of the word (with the caller's offset applied).
    public var index: Int
    /// The word as given.
    public var word: String
    /// What is wrong.
    public var problem: Problem

    /// Creates an error.
    public init(index: Int, word: String, problem: Problem) {
        self.index = index
        self.word = word
        self.problem = problem
    }

    /// What can be wrong with a word.
    public enum Problem: Error, Sendable, Hashable, CustomStringConvertible {
        /// The word starts with `:` (no task name).
        case emptyTaskName
        /// The task name has characters other than letters, digits, `_`, `.`, `-`.
        case invalidTaskName(String)
        /// A backslash at the end of the arguments, escaping nothing.
        case trailingBackslash
        /// A selector such as `puppet_class` without `:VALUE`.
        case selectorNeedsValue(String)
        /// `all:x`: a selector that takes no value was given one.
        case selectorTakesNoValue(String)
        /// A selector with an empty value, e.g. `class:cache,`.
        case emptySelectorValue(String)
        /// `do:` or `sdo:` with nothing to run.
        case emptyCommand(task: String)
        /// `hosts=a;;b`, `host=`: a per-task host keyword with an empty name.
        case emptyHostKeyword(String)

        public var description: String {
            switch self {
            case .emptyTaskName:
                return "empty task name before ':'"
            case .invalidTaskName(let name):
                return "'\(name)' is not a task name (letters, digits, '_', '.' and '-' only)"
            case .trailingBackslash:
                return "trailing backslash escapes nothing (write \\\\ for a backslash)"
            case .selectorNeedsValue(let name):
                return "selector '\(name)' needs a value, e.g. \(name):NAME"
            case .selectorTakesNoValue(let name):
                return "selector '\(name)' takes no value"
            case .emptySelectorValue(let name):
                return "selector '\(name)' has an empty value"
            case .emptyCommand(let task):
                return "'\(task)' needs a command, e.g. \(task):'uptime'"
            case .emptyHostKeyword(let keyword):
                return "'\(keyword)=' has an empty name; give names separated by ';', e.g. \(keyword)=cache-1"
                    + (keyword == "host" || keyword == "role" ? "" : ";cache-2")
            }
        }
    }

    /// `word 3 'sdo:': 'sdo' needs a command, e.g. sdo:'uptime'` (1-based).
    public var description: String { "word \(index + 1) '\(word)': \(problem)" }
}
