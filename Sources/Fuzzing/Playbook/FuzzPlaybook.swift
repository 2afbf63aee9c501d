import Fleet
import FuzzSupport

@testable import FleetTasks

/// Playbook files. Checks: the same text always gives the same playbook or the same located
/// error; a loaded playbook has steps, never runs a step that can change hosts while declaring
/// `changes: false` (production would skip the confirmation), and its name is a task word the
/// command line can reach (not a selector such as `all`).
@main
enum FuzzPlaybook {
    static let file = "/fuzz/playbooks/fuzz.yml"

    static func main() {
        runFuzzer { data, size in
            FuzzPlaybook.testOneInput(fuzzInput(data, size))
            return 0
        }
    }

    static func testOneInput(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        let first = Result { () throws(PlaybookError) in try PlaybookLoader.parse(text, file: file) }
        let second = Result { () throws(PlaybookError) in try PlaybookLoader.parse(text, file: file) }
        invariant(first == second, "the same text parsed two ways")
        switch first {
        case .success(let playbook):
            invariant(!playbook.steps.isEmpty, "a playbook without steps loaded")
            if !playbook.changes {
                invariant(
                    !playbook.steps.contains(where: \.canChangeHosts),
                    "changes: false with a step that can change hosts")
            }
            invariant(playbook.descriptor.changesHosts == playbook.changes, "help and confirmation disagree on changes")
            _ = playbook.usage
            for step in playbook.steps { _ = step.summary }
            switch try? FabricCommandLine.parseWord(playbook.name) {
            case .task(let task)?:
                invariant(
                    task.name == playbook.name && task.positional.isEmpty, "'\(playbook.name)' reads as another task")
            default:
                invariant(false, "playbook '\(playbook.name)' cannot be named on the command line")
            }
        case .failure(let error):
            invariant(error.location.file == file, "error not located in the playbook: \(error)")
        }
    }
}
