import Dispatch
import Logging
import NIOCore
import NIOPosix
import Replay
import ReplayMetrics

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Makes the live-capture input from `--input-raw` options (provided by the
/// `Capture` target; `Replay` knows nothing of pcap).
public typealias RawInputFactory = @Sendable (RawInputFlags, LimitedAddress) throws -> any MessageInput

/// The `goreplay` program: parse GoReplay's flags, build inputs and outputs,
/// replay, print a summary.
public struct GoReplayCommand: Sendable {
    /// Printed by `-version`; released with govuk-fab (GovukFab.version), flags as GoReplay 1.3's.
    public static let version = "0.12.0"

    let rawInputFactory: RawInputFactory?
    let handlesSignals: Bool
    let standardError: @Sendable (String) -> Void
    let standardOutput: @Sendable (String) -> Void

    /// - Parameters:
    ///   - rawInputFactory: makes one input per `--input-raw` address; nil
    ///     makes `--input-raw` an error.
    ///   - handlesSignals: stop cleanly on SIGINT/SIGTERM (exit 1).
    public init(
        rawInputFactory: RawInputFactory? = nil, handlesSignals: Bool = true,
        standardError: @escaping @Sendable (String) -> Void = { text in writeLine(text, to: STDERR_FILENO) },
        standardOutput: @escaping @Sendable (String) -> Void = { text in writeLine(text, to: STDOUT_FILENO) }
    ) {
        self.rawInputFactory = rawInputFactory
        self.handlesSignals = handlesSignals
        self.standardError = standardError
        self.standardOutput = standardOutput
    }

    /// Runs with `arguments` (without the program name); returns the exit status.
    public func run<C: Collection & Sendable>(arguments: C) async -> Int32 where C.Element == String {
        if arguments.first == "report" {
            return ReportCommand(standardOutput: standardOutput, standardError: standardError).run(
                Array(arguments.dropFirst()))
        }
        let options: GoReplayOptions
        do {
            switch try GoFlagParser.parse(arguments) {
            case .help:
                standardOutput(GoFlagParser.usage)
                return 0
            case .version:
                standardOutput("goreplay \(GoReplayCommand.version)")
                return 0
            case .completion(let shell):
                standardOutput(GoReplayCompletion.script(for: shell))
                return 0
            case .run(let parsed):
                options = parsed
            }
            guard options.inputCount > 0, options.outputCount > 0 || options.inputFileDryRun else {
                throw UsageError.missingInputOrOutput
            }
            if options.outputHTTPStats && !options.stats {
                standardError(
                    "goreplay: note: --output-http-stats prints queue lines only with --stats (as in GoReplay)")
            }
        } catch {
            standardError("goreplay: \(error)")
            return 2
        }
        do {
            return try await replay(options)
        } catch {
            standardError("goreplay: \(error)")
            return 1
        }
    }

    private enum Ending: Sendable {
        case inputsEnded
        case exitAfter
        case signal(Int32)
    }

    private func replay(_ options: GoReplayOptions) async throws -> Int32 {
        var logger = Logger(label: "goreplay")
        logger.logLevel = options.verbose >= 2 ? .trace : options.verbose == 1 ? .debug : .notice
        let statistics = ReplayStatistics()

        if options.inputFileDryRun { return try dryRun(options) }

        // Inputs.
        var inputs: [InputRoute] = []
        for address in options.inputFiles {
            var fileOptions = FileInputOptions()
            fileOptions.loop = options.inputFileLoop
            fileOptions.maxWait = options.inputFileMaxWait
            fileOptions.readDepth = options.inputFileReadDepth
            var limit = address.limit
            if case .percent(let percent) = address.limit {
                // On files `|N%` is a speed factor, not sampling (GoReplay).
                fileOptions.speedFactor = percent / 100
                limit = nil
            }
            let input = try GorFileInput(pattern: address.address, options: fileOptions, statistics: statistics)
            inputs.append(InputRoute(input, limit: limit))
        }
        for _ in options.inputDummy { inputs.append(InputRoute(DummyInput())) }
        if !options.raw.addresses.isEmpty {
            guard let rawInputFactory else { throw CommandError.rawInputUnavailable }
            var raw = options.raw
            raw.replayTargets = options.outputHTTP.map(\.address)
            for address in raw.addresses {
                inputs.append(InputRoute(try rawInputFactory(raw, address), limit: address.limit))
            }
        }

        // --metrics: counts original responses as inputs yield them, replayed ones from the HTTP outputs.
        let metrics = options.metricsAddress == nil ? nil : MirrorMetrics(statistics: statistics)

        // Pipeline and outputs.
        let pipeline = ReplayPipeline(
            modifier: HTTPModifier(options.modifier), splitOutput: options.splitOutput,
            maxPayloadSize: options.copyBufferSize.flatMap { $0 > 0 ? $0 : nil }, statistics: statistics, logger: logger
        )
        let group: MultiThreadedEventLoopGroup? =
            options.outputHTTP.isEmpty && options.outputTCP.isEmpty
            ? nil : MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
        var httpOutputs: [HTTPOutput] = []
        do {
            var httpOptions = options.http
            if options.modifier.setsHost { httpOptions.originalHost = true }
            httpOptions.reportFailure = { [standardError] line in standardError("goreplay: \(line)") }
            let forwardReplayedResponses = httpOptions.trackResponses
            if !options.inputTCP.isEmpty && !options.outputHTTP.isEmpty {
                // --input-tcp acknowledges a request once the target has answered it.
                httpOptions.trackResponses = true
                pipeline.acknowledgeRequestsOnReplayedResponse()
            }
            if metrics != nil { httpOptions.trackResponses = true }
            for address in options.outputHTTP {
                guard let group else { break }
                let target = try HTTPTarget(parsing: address.address)
                let sink: (@Sendable (ReplayMessage) -> Void)? =
                    httpOptions.trackResponses
                    ? { @Sendable [pipeline] message in
                        metrics?.observe(message)
                        pipeline.routeReplayedResponse(message, forward: forwardReplayedResponses)
                    } : nil
                let output = try HTTPOutput(
                    target: target, options: httpOptions, group: group, statistics: statistics, responseSink: sink)
                httpOutputs.append(output)
                pipeline.addOutput(OutputRoute(output, limit: address.limit))
            }
            for address in options.outputFiles {
                pipeline.addOutput(
                    OutputRoute(
                        FileOutput(template: address.address, options: options.file, statistics: statistics),
                        limit: address.limit))
            }
            if options.outputStdout { pipeline.addOutput(OutputRoute(StdoutOutput(statistics: statistics))) }
            if options.outputNull { pipeline.addOutput(OutputRoute(NullOutput(statistics: statistics))) }
            try await setUpMiddlewareAndTCP(
                options, pipeline: pipeline, group: group, statistics: statistics, inputs: &inputs)
        } catch {
            try? await group?.shutdownGracefully()
            throw error
        }

        let routes =
            metrics.map { metrics in
                inputs.map { InputRoute(ObservedInput($0.input, metrics: metrics), limit: $0.limit) }
            } ?? inputs
        var metricsServer: MetricsServer?
        if let metrics, let address = options.metricsAddress {
            do {
                metricsServer = try await MetricsServer.start(
                    address: address, metrics: metrics, group: MultiThreadedEventLoopGroup.singleton)
            } catch {
                for output in pipeline.outputList { await output.close(grace: .zero) }
                try? await group?.shutdownGracefully()
                throw CommandError.metricsUnavailable(address: "\(address.host):\(address.port)", reason: "\(error)")
            }
            standardError("goreplay: metrics on http://\(metricsServer?.boundAddress ?? "")/metrics")
        }
        let signals = handlesSignals ? SignalWatcher(signals: [SIGINT, SIGTERM]) : nil
        let started = ContinuousClock.now
        let ending: Ending = await withTaskGroup(of: Ending?.self) { tasks in
            tasks.addTask {
                await pipeline.run(inputs: routes)
                return Task.isCancelled ? nil : .inputsEnded
            }
            if let exitAfter = options.exitAfter {
                tasks.addTask {
                    do { try await Task.sleep(for: exitAfter) } catch { return nil }
                    return .exitAfter
                }
            }
            if let signals {
                tasks.addTask {
                    guard let number = await signals.next() else { return nil }
                    return .signal(number)
                }
            }
            tasks.addTask {
                // Periodic flushes and stats lines; never ends on its own.
                let flushEvery = options.file.flushInterval > .zero ? options.file.flushInterval : .seconds(1)
                let statsEvery = options.outputHTTPStatsInterval
                var nextFlush = ContinuousClock.now + flushEvery
                var nextStats = ContinuousClock.now + statsEvery
                var lastSent: [Int] = []
                while !Task.isCancelled {
                    let wake = options.stats ? min(nextFlush, nextStats) : nextFlush
                    do { try await Task.sleep(until: wake) } catch { return nil }
                    for output in pipeline.outputList { output.flush() }
                    nextFlush = ContinuousClock.now + flushEvery
                    if options.stats && ContinuousClock.now >= nextStats {
                        lastSent = printStats(
                            statistics, previous: lastSent, interval: statsEvery, includeHTTP: options.outputHTTPStats)
                        nextStats = ContinuousClock.now + statsEvery
                    }
                }
                return nil
            }
            var result = Ending.inputsEnded
            for await ending in tasks {
                if let ending {
                    result = ending
                    break
                }
            }
            tasks.cancelAll()
            return result
        }
        signals?.stop()

        let grace: Duration
        switch ending {
        case .inputsEnded: grace = options.http.timeout + .seconds(1)
        case .exitAfter: grace = .seconds(1)
        case .signal: grace = .milliseconds(300)
        }
        pipeline.middleware?.stop()
        for output in pipeline.outputList { await output.close(grace: grace) }
        await metricsServer?.stop()
        try? await group?.shutdownGracefully()
        let elapsed = ContinuousClock.now - started
        let middlewareFailure = finishMiddlewareAndTCP(pipeline: pipeline, statistics: statistics)
        standardError(
            statistics.summary(
                elapsedSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
        if case .signal(let number) = ending {
            standardError("goreplay: stopped by signal \(number)")
            return 1
        }
        if let middlewareFailure {
            standardError("goreplay: \(middlewareFailure)")
            return 3
        }
        return 0
    }

    /// One line per output; returns the `sent` counts for the next rate. As in GoReplay, the HTTP
    /// outputs' queue lines need `--output-http-stats` as well as `--stats`.
    private func printStats(_ statistics: ReplayStatistics, previous: [Int], interval: Duration, includeHTTP: Bool)
        -> [Int]
    {
        let outputs = statistics.outputSnapshot
        let seconds = max(0.001, Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18)
        for (index, output) in outputs.enumerated() {
            let isHTTP = output.name.hasPrefix("http://") || output.name.hasPrefix("https://")
            if isHTTP && !includeHTTP { continue }
            let before = index < previous.count ? previous[index] : 0
            let rate = Double(output.sent - before) / seconds
            standardError(
                "goreplay: stats \(output.name): queue \(output.queueLength) (max \(output.queueLengthMax)), sent \(output.sent) (\(Int(rate))/s), responses \(output.responses), dropped \(output.droppedQueueFull + output.droppedRateLimit), failed \(output.failed)"
            )
        }
        return outputs.map(\.sent)
    }

    /// `--input-file-dry-run`: what a replay would do, without replaying.
    private func dryRun(_ options: GoReplayOptions) throws -> Int32 {
        for address in options.inputFiles {
            let input = try GorFileInput(pattern: address.address)
            for path in input.paths {
                let reader = try GorFileReader(path: path)
                var count = 0
                var bytes = 0
                var outOfOrder = 0
                var first: Int64?
                var last: Int64?
                var previous: Int64?
                while let message = try reader.next() {
                    count += 1
                    bytes += message.payload.count
                    if first == nil { first = message.timestamp }
                    last = max(last ?? message.timestamp, message.timestamp)
                    if let previous, message.timestamp < previous { outOfOrder += 1 }
                    previous = message.timestamp
                }
                let span = Double((last ?? 0) - (first ?? 0)) / 1e9
                standardOutput(
                    "\(path): records \(count), payload bytes \(bytes), time span \(String(format1: span))s, out of order \(outOfOrder), skipped \(reader.skippedCount)"
                )
            }
        }
        return 0
    }
}

/// Runtime failures of the command.
public enum CommandError: Error, Sendable, CustomStringConvertible {
    /// `--input-raw` was given but no capture input is built in.
    case rawInputUnavailable
    /// `--metrics` could not listen.
    case metricsUnavailable(address: String, reason: String)

    public var description: String {
        switch self {
        case .rawInputUnavailable: "--input-raw needs live capture, which this build does not include"
        case .metricsUnavailable(let address, let reason):
            "--metrics \(address): cannot listen (\(reason)); choose a free port"
        }
    }
}

/// `--input-dummy`: a GET / every second.
struct DummyInput: MessageInput {
    let name = "dummy"

    func messages() -> AsyncThrowingStream<ReplayMessage, any Error> {
        AsyncThrowingStream {
            try await Task.sleep(for: .seconds(1))
            let hex = Array("0123456789abcdef")
            let id = String((0..<24).map { _ in hex.randomElement() ?? "0" })
            let payload = Array(
                "GET / HTTP/1.1\r\nHost: www.w3.org\r\nUser-Agent: Go 1.1 package http\r\nAccept-Encoding: gzip\r\n\r\n"
                    .utf8)
            return ReplayMessage(type: .request, id: id, timestamp: wallNanoseconds(), latency: -1, payload: payload)
        }
    }
}

/// SIGINT/SIGTERM as an async sequence of signal numbers, via DispatchSource.
/// (`@unchecked`: the sources are set once and only cancelled in `stop`.)
final class SignalWatcher: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]
    private let stream: AsyncStream<Int32>
    private let signals: [Int32]

    init(signals: [Int32]) {
        self.signals = signals
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.stream = stream
        var sources: [any DispatchSourceSignal] = []
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func next() async -> Int32? {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next()
    }

    func stop() {
        for source in sources { source.cancel() }
        for number in signals { signal(number, SIG_DFL) }
    }
}

extension String {
    init(format1 value: Double) {
        let tenths = Int64((value * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}

/// Writes a line straight to a descriptor (no shared `FILE *` state).
public func writeLine(_ text: String, to descriptor: Int32) {
    var bytes = Array(text.utf8)
    bytes.append(0x0A)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { raw in write(descriptor, raw.baseAddress! + offset, raw.count - offset) }
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
    }
}
