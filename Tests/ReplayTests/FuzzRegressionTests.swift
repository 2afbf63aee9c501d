import Foundation
import Replay
import Testing

/// Inputs found by the libFuzzer harnesses (Sources/Fuzzing, docs/fuzzing.md), kept as tests.
@Suite("Fuzz findings: the .gor reader")
struct GorReaderFuzzRegressionTests {
    private func read(_ bytes: [UInt8], maxRecordSize: Int) throws -> (messages: [ReplayMessage], reader: GorFileReader)
    {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("found.gor").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reader = try GorFileReader(path: path, maxRecordSize: maxRecordSize)
        var messages: [ReplayMessage] = []
        while let message = try reader.next() { messages.append(message) }
        return (messages, reader)
    }

    /// FuzzGorReader crash-99c6556268ce: a record limit under the separator's length made the
    /// discard step remove a negative range (Swift runtime trap) on a 7-byte file.
    @Test func recordLimitBelowTheSeparatorLengthSkipsInsteadOfTrapping() throws {
        let (messages, reader) = try read([0x00, 0x00, 0x08, 0x34, 0x64, 0x31, 0xff], maxRecordSize: 1)
        #expect(messages.isEmpty)
        #expect(reader.skippedReasons == [.recordTooLarge(1)])
    }

}
