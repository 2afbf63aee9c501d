import Foundation

/// Why a test fleet could not be started or driven.
public enum TestFleetError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Not running as root: unshare and mount need it.
    case notRoot
    /// A program the fleet needs (sshd, unshare, nsenter) is missing.
    case missingTool(String)
    /// `testfleet.sh` was not found at any of these places.
    case scriptNotFound(searched: [String])
    /// The options cannot describe a fleet (bad host count, name prefix or path).
    case invalidOptions(String)
    /// A `testfleet.sh` command exited non-zero; `output` holds what it printed.
    case commandFailed(command: String, status: Int32, output: String)
    /// A subprocess could not be launched at all.
    case launchFailed(executable: String, reason: String)
    /// A file the script writes (hosts.tsv, paths) is missing or malformed.
    case malformedFleetFile(path: String, detail: String)
    /// No host of this fleet has that name.
    case unknownHost(String)
    /// The host exists but is stopped, so nothing can run on it.
    case hostNotRunning(String)

    public var description: String {
        switch self {
        case .notRoot:
            return "the test fleet needs root for unshare/mount: run as root"
        case .missingTool(let tool):
            return "the test fleet needs \(tool) (packages openssh-server, util-linux)"
        case .scriptNotFound(let searched):
            return "testfleet.sh not found; looked at: \(searched.joined(separator: ", "))"
                + " (set GOVUK_FAB_TESTFLEET_SCRIPT)"
        case .invalidOptions(let detail):
            return "invalid test fleet options: \(detail)"
        case .commandFailed(let command, let status, let output):
            let trimmed = output.trimmingCharacters(in: .whitespacesAndNewlines)
            return "\(command) exited with status \(status)" + (trimmed.isEmpty ? "" : ":\n\(trimmed)")
        case .launchFailed(let executable, let reason):
            return "could not run \(executable): \(reason)"
        case .malformedFleetFile(let path, let detail):
            return "\(path): \(detail)"
        case .unknownHost(let name):
            return "no host named '\(name)' in this test fleet"
        case .hostNotRunning(let name):
            return "test fleet host '\(name)' is stopped"
        }
    }
}
