import Foundation
import GoReplayCLI
import NIOConcurrencyHelpers
import Replay

/// A temporary directory removed by the caller.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("replay-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A request payload with CRLFs.
func request(_ lines: String, body: String = "") -> [UInt8] {
    Array((lines.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n\r\n" + body).utf8)
}

func requestMessage(_ index: Int, _ payload: [UInt8], timestamp: Int64? = nil) -> ReplayMessage {
    let id = String(format: "%024x", index + 1)
    return ReplayMessage(
        type: .request, id: id, timestamp: timestamp ?? (1_700_000_000_000_000_000 + Int64(index) * 1000), latency: 0,
        payload: payload)
}

/// Writes messages as a .gor file.
func writeGor(_ messages: [ReplayMessage], to url: URL) throws {
    var bytes: [UInt8] = []
    for message in messages { GorFormat.encode(message, into: &bytes) }
    try Data(bytes).write(to: url)
}

/// Runs the command in-process, capturing stderr and stdout lines.
struct CommandRun {
    var status: Int32
    var errorLines: [String]
    var outputLines: [String]
    var errorText: String { errorLines.joined(separator: "\n") }

    /// The number after `label` in the summary, e.g. "dropped queue full".
    func counter(_ label: String) -> Int? {
        for line in errorLines {
            guard let range = line.range(of: label + " ") else { continue }
            let digits = line[range.upperBound...].prefix { $0.isNumber }
            if let value = Int(digits) { return value }
        }
        return nil
    }
}

func runGoReplay(_ arguments: [String]) async -> CommandRun {
    let errors = NIOLockedValueBox([String]())
    let outputs = NIOLockedValueBox([String]())
    let command = GoReplayCommand(
        rawInputFactory: nil, handlesSignals: false,
        standardError: { line in errors.withLockedValue { $0.append(line) } },
        standardOutput: { line in outputs.withLockedValue { $0.append(line) } })
    let status = await command.run(arguments: arguments)
    return CommandRun(
        status: status,
        errorLines: errors.withLockedValue { $0 }.flatMap { $0.split(separator: "\n").map(String.init) },
        outputLines: outputs.withLockedValue { $0 })
}
