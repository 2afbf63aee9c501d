import NIOCore
import NIOPosix
import Replay

extension GoReplayCommand {
    /// `--input-tcp`, `--output-tcp` and `--middleware`: listens, connects
    /// (in the background) and starts the middleware process.
    func setUpMiddlewareAndTCP(
        _ options: GoReplayOptions, pipeline: ReplayPipeline, group: MultiThreadedEventLoopGroup?,
        statistics: ReplayStatistics, inputs: inout [InputRoute]
    ) async throws {
        if let group {
            for address in options.outputTCP {
                let output = try TCPOutput(
                    address: try TCPAddress(parsing: address.address), options: options.tcpOutput, group: group,
                    statistics: statistics)
                pipeline.addOutput(OutputRoute(output, limit: address.limit))
            }
        }
        for address in options.inputTCP {
            let input = try await TCPInput.listen(
                on: try TCPAddress(parsing: address.address), options: options.tcpInput, statistics: statistics,
                acknowledgements: pipeline.acknowledgements)
            inputs.append(InputRoute(input, limit: address.limit))
        }
        if let command = options.middleware {
            try pipeline.attach(middleware: Middleware(command: command, options: options.middlewareOptions))
        }
    }

    /// Puts the middleware's counters in the statistics, reports TCP outputs
    /// that could not deliver, and returns the middleware's failure (exit 3).
    func finishMiddlewareAndTCP(pipeline: ReplayPipeline, statistics: ReplayStatistics) -> MiddlewareFailure? {
        for output in pipeline.outputList {
            guard let tcp = output as? TCPOutput, let reason = tcp.lastConnectionError else { continue }
            standardError("goreplay: output \(tcp.name): last connection error: \(reason)")
        }
        guard let middleware = pipeline.middleware else { return nil }
        let counters = middleware.counters
        statistics.updatePipeline { $0.middleware = counters }
        return middleware.endOfRunFailure
    }
}
