import Capture
import Foundation
import Replay
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Counts what a benchmark capture produced; touched only by the consumer.
actor BenchmarkTally {
    var requests = 0
    var intact = 0
    var variants: [[UInt8]: Int] = [:]

    func add(_ message: ReplayMessage, expected: [UInt8]) {
        guard message.type == .request else { return }
        requests += 1
        if message.payload == expected {
            intact += 1
        } else if variants.count < 5 {
            variants[message.payload, default: 0] += 1
        }
    }
}

/// Driven by bench/capture/run.sh, not part of the normal test run: captures
/// on 127.0.0.1:$CAPTURE_BENCH_PORT for $CAPTURE_BENCH_SECONDS and prints one
/// `BENCH key=value ...` line with counts, CPU and peak memory.
@Suite(
    "Capture benchmark (bench/capture/run.sh)",
    .enabled(
        if: ProcessInfo.processInfo.environment["CAPTURE_BENCH_PORT"] != nil && getuid() == 0,
        "set CAPTURE_BENCH_PORT (bench/capture/run.sh does) and run as root"))
struct CaptureBenchmark {
    @Test("capture wrk traffic for a fixed window and print figures")
    func captureWindow() async throws {
        let environment = ProcessInfo.processInfo.environment
        let port = try #require(environment["CAPTURE_BENCH_PORT"].flatMap(UInt16.init))
        let seconds = environment["CAPTURE_BENCH_SECONDS"].flatMap(Double.init) ?? 10
        let path = environment["CAPTURE_BENCH_PATH"] ?? "/"
        // The request wrk sends, byte for byte.
        let expected = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n".utf8)
        var options = try RawInputOptions(addresses: ["127.0.0.1:\(port)"])
        options.trackResponse = environment["CAPTURE_BENCH_TRACK_RESPONSE"] == "1"
        let input = try RawCaptureInput(options: options)
        let stream = input.messages()
        let before = Self.usage()
        let started = ContinuousClock.now
        let tally = BenchmarkTally()
        let consumer = Task {
            for try await message in stream { await tally.add(message, expected: expected) }
        }
        Self.emit("BENCH_READY")
        try await Task.sleep(for: .seconds(seconds))
        consumer.cancel()
        _ = await consumer.result
        let elapsed = (ContinuousClock.now - started) / .seconds(1)
        let after = Self.usage()
        for _ in 0..<100 where input.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let statistics = input.statistics
        let cpu = after.cpu - before.cpu
        let requests = await tally.requests
        let intact = await tally.intact
        let variants = await tally.variants
        Self.emit(
            "BENCH captured_requests=\(requests) intact_requests=\(intact) cpu_seconds=\(String(format: "%.2f", cpu))"
                + " cpu_percent=\(String(format: "%.1f", 100 * cpu / elapsed)) peak_rss_kib=\(after.maxRSS) \(statistics)"
        )
        for (payload, count) in variants {
            Self.emit(
                "BENCH_VARIANT count=\(count) bytes=\(payload.count) head=\(String(decoding: payload.prefix(80), as: UTF8.self).debugDescription)"
            )
        }
        #expect(requests > 0)
    }

    /// Writes a line to stdout unbuffered, so the script sees it at once.
    static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func usage() -> (cpu: Double, maxRSS: Int) {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        let cpu =
            Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(
                usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return (cpu, Int(usage.ru_maxrss))
    }
}
