import Foundation
import Replay
import Testing

/// `--input-file-read-depth`: records written out of order (live capture
/// writes them as they complete) replay in timestamp order.
@Suite("File input: timestamp order", .serialized)
struct ReplayOrderTests {
    private func collect(_ input: GorFileInput) async throws -> [ReplayMessage] {
        var messages: [ReplayMessage] = []
        for try await message in input.messages() { messages.append(message) }
        return messages
    }

    private func fastOptions(depth: Int) -> FileInputOptions {
        var options = FileInputOptions()
        options.speedFactor = 1e9
        options.readDepth = depth
        return options
    }

    @Test("a file with shuffled timestamps replays sorted when they lie within the read depth")
    func shuffledWithinDepth() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var generator = SystemRandomNumberGenerator()
        // Blocks of 50 shuffled records: each is at most 49 places from home.
        var order = Array(0..<1000)
        for block in stride(from: 0, to: 1000, by: 50) { order[block..<(block + 50)].shuffle(using: &generator) }
        let messages = order.map {
            requestMessage($0, request("GET /\($0) HTTP/1.1\nHost: a"), timestamp: 1_000_000 * Int64($0))
        }
        let path = directory.appendingPathComponent("shuffled.gor")
        try writeGor(messages, to: path)
        let replayed = try await collect(GorFileInput(pattern: path.path, options: fastOptions(depth: 100)))
        #expect(replayed.map(\.timestamp) == (0..<1000).map { 1_000_000 * Int64($0) })
        // With a depth of 1 the file's own order is kept: the window is what sorts.
        let unsorted = try await collect(GorFileInput(pattern: path.path, options: fastOptions(depth: 1)))
        #expect(unsorted.map(\.timestamp) == messages.map(\.timestamp))
    }

    @Test("equal timestamps keep their file order")
    func stable() throws {
        var window = ReorderWindow(depth: 10)
        for index in 0..<5 { window.insert(requestMessage(index, [], timestamp: 7)) }
        window.insert(requestMessage(9, [], timestamp: 3))
        var ids: [String] = []
        while let message = window.popEarliest() { ids.append(message.id) }
        #expect(ids == [9, 0, 1, 2, 3, 4].map { String(format: "%024x", $0 + 1) })
    }

    @Test("inserts and pops interleaved past the depth match a sorted reference")
    func interleavedAgainstReference() {
        var window = ReorderWindow(depth: 4)
        var reference: [ReplayMessage] = []
        var popped: [String] = []
        var expected: [String] = []
        // A fixed jumble of timestamps: runs in order, steps back, repeats.
        let stamps: [Int64] = (0..<200).map { Int64(($0 * 37) % 23 + $0 / 3) }
        for (index, stamp) in stamps.enumerated() {
            let message = requestMessage(index, [], timestamp: stamp)
            window.insert(message)
            let position = reference.firstIndex { $0.timestamp > stamp } ?? reference.count
            reference.insert(message, at: position)
            if window.isFull {
                popped.append(window.popEarliest()!.id)
                expected.append(reference.removeFirst().id)
            }
            #expect(!window.isFull)
        }
        while let message = window.popEarliest() { popped.append(message.id) }
        expected += reference.map(\.id)
        #expect(popped == expected)
        #expect(popped.count == 200)
        #expect(window.popEarliest() == nil)
    }

    @Test("0, 600, 300, 700 ms replays a, b, c, d to the target, with the recorded pacing")
    func issueExample() async throws {
        let server = try await TestHTTPServer()
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let base: Int64 = 1_700_000_000_000_000_000
        let records = [("a", 0), ("c", 600), ("b", 300), ("d", 700)].enumerated().map { index, pair in
            requestMessage(
                index, request("GET /\(pair.0) HTTP/1.1\nHost: x"), timestamp: base + Int64(pair.1) * 1_000_000)
        }
        let path = directory.appendingPathComponent("late.gor")
        try writeGor(records, to: path)
        let started = ContinuousClock.now
        let run = await runGoReplay([
            "--input-file", path.path, "--output-http", server.url, "--output-http-workers", "1",
        ])
        let elapsed = ContinuousClock.now - started
        await server.shutdown()
        #expect(run.status == 0)
        #expect(server.requestTexts.map { $0.split(separator: " ")[1] } == ["/a", "/b", "/c", "/d"])
        // The replay keeps the 700 ms recorded span (a lower bound only: an
        // upper bound would be a timing test).
        #expect(elapsed >= .milliseconds(690))
    }

    @Test("a record older than the last one replayed goes at once and adds no delay")
    func lateRecordAddsNoDelay() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Depth 1, so the late record is not re-sorted: 0, 400, 100, 500 ms.
        // Gaps must be 400, 0, 100 (GoReplay skips negative gaps and keeps
        // the latest timestamp), not 400, 0, 400.
        let records = [0, 400, 100, 500].enumerated().map { index, milliseconds in
            requestMessage(
                index, request("GET /\(index) HTTP/1.1\nHost: x"), timestamp: Int64(milliseconds) * 1_000_000)
        }
        let path = directory.appendingPathComponent("late.gor")
        try writeGor(records, to: path)
        var options = FileInputOptions()
        options.readDepth = 1
        var arrivals: [ContinuousClock.Instant] = []
        for try await _ in try GorFileInput(pattern: path.path, options: options).messages() { arrivals.append(.now) }
        #expect(arrivals.count == 4)
        // The last gap is 100 ms of schedule; it would be 400 ms if the late
        // record had reset the clock. Lower and upper bounds are 4× apart.
        let lastGap = arrivals[3] - arrivals[2]
        #expect(lastGap < .milliseconds(350), "last gap \(lastGap)")
    }

    @Test("timestamps at the ends of Int64 do not trap the pacing")
    func extremeTimestamps() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let records = [Int64.min + 1, Int64.max, 0, Int64.min + 1].enumerated().map { index, timestamp in
            requestMessage(index, request("GET /\(index) HTTP/1.1\nHost: x"), timestamp: timestamp)
        }
        let path = directory.appendingPathComponent("extreme.gor")
        try writeGor(records, to: path)
        var options = FileInputOptions()
        options.maxWait = .milliseconds(10)
        let replayed = try await collect(GorFileInput(pattern: path.path, options: options))
        #expect(replayed.count == 4)
    }
}
