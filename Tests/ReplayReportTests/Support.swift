import Foundation
import GoReplayCLI
import NIOConcurrencyHelpers
import Replay

/// A temporary directory the caller removes.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("report-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func writeGor(_ messages: [ReplayMessage], to path: String) throws {
    var bytes: [UInt8] = []
    for message in messages { GorFormat.encode(message, into: &bytes) }
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func readGor(_ path: String) throws -> [ReplayMessage] {
    let reader = try GorFileReader(path: path)
    var messages: [ReplayMessage] = []
    while let message = try reader.next() { messages.append(message) }
    return messages
}

func hexID(_ index: Int) -> String {
    let digits = String(index, radix: 16)
    return String(repeating: "0", count: max(0, 24 - digits.count)) + digits
}

func requestRecord(_ index: Int, _ line: String, timestamp: Int64) -> ReplayMessage {
    let payload = Array("\(line) HTTP/1.1\r\nHost: www.gov.uk\r\nUser-Agent: report-test\r\n\r\n".utf8)
    return ReplayMessage(type: .request, id: hexID(index), timestamp: timestamp, latency: 0, payload: payload)
}

func responseRecord(
    _ type: PayloadType, _ index: Int, status: Int, latencyMilliseconds: Int64, body: String = "ok", timestamp: Int64
) -> ReplayMessage {
    let payload = Array("HTTP/1.1 \(status) X\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
    return ReplayMessage(
        type: type, id: hexID(index), timestamp: timestamp, latency: latencyMilliseconds * 1_000_000, payload: payload)
}

/// The command run in-process, stdout and stderr captured.
struct CommandRun {
    var status: Int32
    var errorLines: [String]
    var outputLines: [String]
    var output: String { outputLines.joined(separator: "\n") }
    var errorText: String { errorLines.joined(separator: "\n") }
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
        status: status, errorLines: errors.withLockedValue { $0 }, outputLines: outputs.withLockedValue { $0 })
}

/// Runs a program to its end; returns its exit status, stdout and stderr.
func runProgram(_ path: String, _ arguments: [String], timeoutSeconds: Double = 120) throws -> (
    status: Int32, output: String, error: String
) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    // Read both pipes while it runs so a full pipe cannot stall it.
    let outputData = NIOLockedValueBox(Data())
    let errorData = NIOLockedValueBox(Data())
    let readers = DispatchGroup()
    for (pipe, box) in [(output, outputData), (error, errorData)] {
        DispatchQueue.global().async(group: readers) {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            box.withLockedValue { $0 = data }
        }
    }
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    while process.isRunning && Date() < deadline { usleep(50_000) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
    }
    process.waitUntilExit()
    readers.wait()
    return (
        process.terminationStatus, String(decoding: outputData.withLockedValue { $0 }, as: UTF8.self),
        String(decoding: errorData.withLockedValue { $0 }, as: UTF8.self)
    )
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
