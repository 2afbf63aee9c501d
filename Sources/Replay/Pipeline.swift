import Logging
import NIOConcurrencyHelpers
import Synchronization

/// An input with the rate limit from its address suffix.
public struct InputRoute: Sendable {
    public var input: any MessageInput
    public var limit: RateLimit?

    public init(_ input: any MessageInput, limit: RateLimit? = nil) {
        self.input = input
        self.limit = limit
    }
}

/// An output with the rate limit from its address suffix.
public struct OutputRoute: Sendable {
    public var output: any MessageOutput
    public var limit: RateLimit?

    public init(_ output: any MessageOutput, limit: RateLimit? = nil) {
        self.output = output
        self.limit = limit
    }
}

/// Moves messages from inputs through filters and rewrites to outputs.
///
/// Per request: input limit, then filters/rewrites, then each output's
/// limit. Responses (types 2 and 3) follow their request: dropped when it
/// was dropped. With `splitOutput` each message goes to one output, round
/// robin; otherwise to all.
public final class ReplayPipeline: Sendable {
    public let statistics: ReplayStatistics
    let modifier: HTTPModifier
    let splitOutput: Bool
    /// `--copy-buffer-size`: payloads are cut to this many bytes.
    let maxPayloadSize: Int?
    let logger: Logger
    private let outputs: NIOLockedValueBox<[OutputRoute]>
    private let outputLimiters: NIOLockedValueBox<[RateLimiter?]>
    private let droppedIDs = NIOLockedValueBox(DroppedIDs())
    private let roundRobin = NIOLockedValueBox(0)
    private let middlewareBox = NIOLockedValueBox<Middleware?>(nil)
    /// Settles acknowledgements of `--input-tcp` records (see `AcknowledgementBook`).
    public let acknowledgements = AcknowledgementBook()
    private let acknowledgeOnRoute = Atomic(true)

    public init(
        modifier: HTTPModifier, splitOutput: Bool = false, maxPayloadSize: Int? = nil,
        statistics: ReplayStatistics, logger: Logger
    ) {
        self.modifier = modifier
        self.splitOutput = splitOutput
        self.maxPayloadSize = maxPayloadSize
        self.statistics = statistics
        self.logger = logger
        self.outputs = NIOLockedValueBox([])
        self.outputLimiters = NIOLockedValueBox([])
    }

    /// Adds an output; call before `run`.
    public func addOutput(_ route: OutputRoute) {
        outputs.withLockedValue { $0.append(route) }
        outputLimiters.withLockedValue { $0.append(route.limit.map(RateLimiter.init)) }
    }

    public var outputList: [any MessageOutput] { outputs.withLockedValue { $0.map(\.output) } }

    /// Sends every message through `middleware` (started here) before the
    /// filters; call before `run`.
    public func attach(middleware: Middleware) throws(MiddlewareFailure) {
        try middleware.start { [self] message in process(message) }
        middlewareBox.withLockedValue { $0 = middleware }
    }

    public var middleware: Middleware? { middlewareBox.withLockedValue { $0 } }

    /// When requests go to an HTTP output, a `--input-tcp` record is
    /// acknowledged once its replayed response arrives, not when routed.
    public func acknowledgeRequestsOnReplayedResponse() {
        acknowledgeOnRoute.store(false, ordering: .relaxed)
    }

    /// Reads every input to its end (or until cancelled), concurrently.
    public func run(inputs: [InputRoute]) async {
        guard let middleware else {
            await pumpAll(inputs)
            return
        }
        // Inputs end → drain the middleware; or the middleware fails → stop reading.
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.pumpAll(inputs)
                return true
            }
            group.addTask {
                await middleware.waitForFailure()
                return false
            }
            if await group.next() == true, !Task.isCancelled {
                await middleware.finishInput()
            }
            group.cancelAll()
        }
    }

    private func pumpAll(_ inputs: [InputRoute]) async {
        await withTaskGroup(of: Void.self) { group in
            for route in inputs {
                group.addTask { await self.pump(route) }
            }
        }
    }

    /// Where input messages go first: the middleware if any, else the filters.
    private func admit(_ message: ReplayMessage) {
        guard let middleware else {
            process(message)
            return
        }
        var message = message
        if let maxPayloadSize, message.payload.count > maxPayloadSize {
            message.payload.removeSubrange(maxPayloadSize...)
        }
        middleware.submit(message)
    }

    private func pump(_ route: InputRoute) async {
        var limiter = route.limit.map(RateLimiter.init)
        do {
            if let file = route.input as? GorFileInput {
                // Straight from the reader: the stream's per-element
                // cancellation handler cost more than decoding the record.
                let records = file.makeReader()
                while !Task.isCancelled, let message = try await records.next() {
                    await take(message, from: route, limiter: &limiter)
                }
            } else {
                for try await message in route.input.messages() {
                    if Task.isCancelled { break }
                    await take(message, from: route, limiter: &limiter)
                }
            }
        } catch is CancellationError {
            // Stopped by --exit-after or a signal: not a failure.
        } catch {
            logger.error("input \(route.input.name) failed: \(error)")
        }
    }

    /// One message from an input: its rate limit, then on to the middleware or filters.
    private func take(_ message: ReplayMessage, from route: InputRoute, limiter: inout RateLimiter?) async {
        if message.type == .request, limiter?.allow() == false {
            dropRequest(message, counting: \.inputRateLimited)
            return
        }
        if let middleware, route.input is GorFileInput {
            // A file can wait for the middleware (GoReplay blocks every input);
            // live and TCP inputs cannot, and drop when its queue is full.
            while !middleware.hasRoom(forBytes: message.payload.count), !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
        admit(message)
    }

    /// A request dropped on purpose (rate limit or filter): counted, its response dropped with it,
    /// and acknowledged, since the replayer is done with it.
    private func dropRequest(_ message: ReplayMessage, counting reason: WritableKeyPath<ReplayStatistics.Pipeline, Int>)
    {
        statistics.updatePipeline {
            $0.requestsRead += 1
            $0[keyPath: reason] += 1
        }
        droppedIDs.withLockedValue { $0.insert(message.id) }
        acknowledgements.settle(id: message.id, type: message.type)
    }

    /// Filters, rewrites and routes one message (also used for replayed
    /// responses coming back from HTTP outputs).
    public func process(_ original: ReplayMessage) {
        var message = original
        if let maxPayloadSize, message.payload.count > maxPayloadSize {
            message.payload.removeSubrange(maxPayloadSize...)
        }
        if message.type == .request {
            guard let payload = modifier.apply(to: message.payload) else {
                dropRequest(message, counting: \.filtered)
                return
            }
            message.payload = payload
            statistics.updatePipeline { $0.requestsRead += 1 }
        } else {
            if message.type == .response { statistics.updatePipeline { $0.responsesRead += 1 } }
            if droppedIDs.withLockedValue({ $0.contains(message.id) }) {
                if message.type == .response { statistics.updatePipeline { $0.filtered += 1 } }
                if message.type == .response { acknowledgements.settle(id: message.id, type: message.type) }
                return
            }
        }
        route(message)
        if message.type != .request || acknowledgeOnRoute.load(ordering: .relaxed) {
            acknowledgements.settle(id: message.id, type: message.type)
        }
    }

    /// Replayed responses skip the filters (their request passed already),
    /// unless there is a middleware: it sees them (GoReplay).
    public func routeReplayedResponse(_ message: ReplayMessage, forward: Bool = true) {
        acknowledgements.settle(id: message.id, type: .request)
        guard forward else { return }
        if let middleware {
            middleware.submit(message)
        } else {
            route(message)
        }
    }

    private func route(_ message: ReplayMessage) {
        let routes = outputs.withLockedValue { $0 }
        guard !routes.isEmpty else { return }
        if splitOutput {
            let index = roundRobin.withLockedValue { counter in
                defer { counter &+= 1 }
                return counter % routes.count
            }
            deliver(message, to: routes[index], index: index)
        } else {
            for (index, route) in routes.enumerated() {
                deliver(message, to: route, index: index)
            }
        }
    }

    private func deliver(_ message: ReplayMessage, to route: OutputRoute, index: Int) {
        if route.limit != nil, message.type == .request {
            let allowed = outputLimiters.withLockedValue { limiters in limiters[index]?.allow() ?? true }
            if !allowed {
                route.output.recordRateLimited()
                return
            }
        }
        route.output.emit(message)
    }
}
