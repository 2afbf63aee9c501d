import Foundation

/// What one run of govuk-fab printed and how it exited, whether it ran as a process
/// (the end-to-end tests) or in process (the pipeline tests): one shape so assertions read alike.
public struct CommandRunResult: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    /// The whole run, for a failed expectation's message.
    public var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }

    /// Lines of stdout that parse as JSON objects (`--json` events).
    public var jsonEvents: [[String: Any]] {
        stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }
}
