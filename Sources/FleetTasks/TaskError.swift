import Fleet

/// A task word that cannot become a runnable task: the CLI prints it on one
/// line and exits 2 (usage).
public struct TaskError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The task word as written, e.g. `app.strat:goreplay`.
    public var word: String
    /// What is wrong.
    public var problem: Problem

    public init(word: String, problem: Problem) {
        self.word = word
        self.problem = problem
    }

    /// The ways a task word can be wrong.
    public enum Problem: Sendable, Hashable, CustomStringConvertible {
        /// No built-in task or playbook has this name; carries near names.
        case unknownTask(name: String, suggestions: [String])
        /// A required argument is absent; `usage` shows how to give it.
        case missingArgument(task: String, usage: String)
        /// More arguments than the task takes.
        case extraArguments(task: String, usage: String, extra: [String])
        /// A keyword argument the task does not know.
        case unknownKeyword(task: String, keyword: String, usage: String)
        /// A service name with characters no service manager allows.
        case invalidServiceName(ServiceNameError)
        /// A task the command line handles itself (`hosts`, `classes`, `help`).
        case handledByCommandLine(task: String)
        /// A playbook argument whose value its declaration refuses.
        case invalidArgument(task: String, argument: String, value: String, reason: String)
        /// A task that runs on at most `limit` hosts was given more.
        case tooManyHosts(task: String, limit: Int, selected: Int)
        /// A playbook pinned to hosts the inventory does not have.
        case pinnedHostsMissing(task: String, pin: String, reason: String, location: SourceLocation)
        /// A keyword argument whose value the task cannot use.
        case invalidValue(task: String, keyword: String, value: String, expected: String)

        public var description: String {
            switch self {
            case .unknownTask(let name, let suggestions):
                return "unknown task '\(name)'" + NameSuggestions.hint(suggestions)
                    + "; run 'govuk-fab --list' to see every task"
            case .missingArgument(let task, let usage):
                return "'\(task)' needs an argument: \(usage) (see 'help:\(task)')"
            case .extraArguments(let task, let usage, let extra):
                let list = extra.map { "'\($0)'" }.joined(separator: ", ")
                return "'\(task)' does not take \(list): usage \(usage) (see 'help:\(task)')"
            case .unknownKeyword(let task, let keyword, let usage):
                return "'\(task)' has no option '\(keyword)=': usage \(usage) (see 'help:\(task)')"
            case .invalidServiceName(let error):
                return error.description
            case .handledByCommandLine(let task):
                return "'\(task)' is handled by the command line and runs on no host"
            case .invalidArgument(let task, let argument, let value, let reason):
                return
                    "'\(task)' argument '\(argument)' cannot be \(value.debugDescription): \(reason) (see 'help:\(task)')"
            case .tooManyHosts(let task, let limit, let selected):
                return
                    "'\(task)' runs on at most \(limit) host\(limit == 1 ? "" : "s") at a time, but \(selected) are selected: "
                    + "select \(limit == 1 ? "one" : "fewer") with -H HOST"
            case .pinnedHostsMissing(let task, let pin, let reason, let location):
                return "'\(task)' runs on \(pin) (\(location)), but \(reason): add that host to the inventory"
            case .invalidValue(let task, let keyword, let value, let expected):
                return "'\(task)' option '\(keyword)=\(value)': expected \(expected) (see 'help:\(task)')"
            }
        }
    }

    /// One line whatever the word holds: control characters are shown escaped.
    public var description: String {
        let shown = word.unicodeScalars.map {
            $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0)
        }.joined()
        return "task '\(shown)': \(problem)"
    }
}
