import Foundation

/// What a finished subprocess left behind.
struct SubprocessResult: Sendable {
    var status: Int32
    /// stdout and stderr interleaved, as a terminal would show them.
    var output: String
}

/// Runs `executable` to completion with stdin from /dev/null, collecting stdout and
/// stderr through one pipe. The pipe is drained before waiting for exit, so a chatty
/// child can never block on a full pipe while we wait for it.
func runSubprocess(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil
) throws(TestFleetError) -> SubprocessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    do {
        try process.run()
    } catch {
        throw .launchFailed(executable: executable, reason: "\(error)")
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return SubprocessResult(
        status: process.terminationStatus,
        output: String(decoding: data, as: UTF8.self))
}
