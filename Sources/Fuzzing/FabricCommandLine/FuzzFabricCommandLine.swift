import FuzzSupport

@testable import Fleet

/// Fabric task words (`name:a,b\,c,key=value,hosts=x;y`) and the option normaliser, one word
/// per input line. A word that parses must render back to text that parses to the same task:
/// arguments, keywords and own hosts survive escaping, which is what keeps quoting sound.
@main
enum FuzzFabricCommandLine {
    static func main() {
        runFuzzer { data, size in
            FuzzFabricCommandLine.testOneInput(fuzzInput(data, size))
            return 0
        }
    }

    static func testOneInput(_ input: UnsafeRawBufferPointer) {
        let words = String(decoding: input, as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        _ = try? FabricOptions.normalise(words)
        _ = try? FabricOptions.settings(words)
        for word in words { _ = FabricOptions.seconds(word) }

        let parsed: [CommandWord]
        do {
            parsed = try FabricCommandLine.parse(words, indexOffset: 1)
        } catch {
            invariant(
                error.index >= 1 && error.index <= words.count, "error names word \(error.index) of \(words.count)")
            invariant(words[error.index - 1] == error.word, "error quotes the word it names")
            return
        }
        invariant(parsed.count == words.count, "one parsed word per word")
        for case .task(let task) in parsed {
            // A free-form command has two spellings (commas escaped or not) and which one reads
            // back depends on the command (`hosts=a,b` is a command; `hosts=a\,b` a host list),
            // so one of them must; a task's arguments have exactly one.
            let renderings = render(task)
            var problems: [String] = []
            for rendered in renderings {
                do {
                    guard case .task(let reparsed) = try FabricCommandLine.parseWord(rendered) else {
                        problems.append("'\(rendered)' is no longer a task")
                        continue
                    }
                    if reparsed.name == task.name, reparsed.positional == task.positional,
                        reparsed.keywords == task.keywords,
                        reparsed.hosts == task.hosts, reparsed.roles == task.roles,
                        reparsed.excludeHosts == task.excludeHosts
                    {
                        problems = []
                        break
                    }
                    problems.append(
                        "'\(rendered)' reads as \(reparsed.positional) \(reparsed.keywords) hosts \(reparsed.hosts) roles \(reparsed.roles) excluding \(reparsed.excludeHosts)"
                    )
                } catch {
                    problems.append("'\(rendered)' does not parse: \(error)")
                }
            }
            invariant(
                problems.isEmpty,
                "'\(task.raw)' (\(task.positional) \(task.keywords) hosts \(task.hosts) roles \(task.roles) excluding \(task.excludeHosts)) does not round-trip: \(problems.joined(separator: "; "))"
            )
            for keyword in task.keywords {
                invariant(
                    !FabricCommandLine.hostKeywords.contains(keyword.name),
                    "host keyword '\(keyword.name)' passed to the task")
                invariant(
                    FabricCommandLine.isIdentifier(keyword.name), "keyword name '\(keyword.name)' is not an identifier")
            }
            for name in task.hosts + task.roles + task.excludeHosts {
                invariant(
                    !name.isEmpty && name == name.trimmingCharacters(in: .whitespaces),
                    "own host name '\(name)' empty or untrimmed")
            }
        }
    }

    /// The task as words: every `\`, `,` and `=` in a value escaped; a free-form command with its
    /// commas escaped, and as written.
    static func render(_ task: TaskInvocation) -> [String] {
        func escaped(_ text: String) -> String {
            var out = ""
            for character in text {
                if character == "\\" || character == "," || character == "=" { out.append("\\") }
                out.append(character)
            }
            return out
        }
        var own: [String] = []
        func add(_ single: String, _ plural: String, _ names: [String]) {
            guard !names.isEmpty else { return }
            if names.count == 1 {
                own.append("\(single)=\(escaped(names[0]))")
            } else {
                own.append("\(plural)=\(names.map(escaped).joined(separator: ";"))")
            }
        }
        add("host", "hosts", task.hosts)
        add("role", "roles", task.roles)
        add("exclude_hosts", "exclude_hosts", task.excludeHosts)
        let spellings: [[String]]
        if FabricCommandLine.defaultFreeFormTasks.contains(task.name) {
            spellings = [task.positional.map { $0.replacingOccurrences(of: ",", with: "\\,") }, task.positional]
        } else {
            spellings = [task.positional.map(escaped) + task.keywords.map { "\($0.name)=\(escaped($0.value))" }]
        }
        return spellings.map { arguments in
            let all = arguments + own
            return all.isEmpty ? task.name : "\(task.name):\(all.joined(separator: ","))"
        }
    }
}
