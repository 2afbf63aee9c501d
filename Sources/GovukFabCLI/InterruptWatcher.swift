import Dispatch
import Foundation

/// Ctrl-C handling: the first SIGINT (or SIGTERM) stops scheduling and closes
/// remote commands through task cancellation, so the run still reports what
/// finished; a second one exits at once with 130, after `onAbandon` (the audit line).
final class InterruptWatcher: @unchecked Sendable {
    // Written once in init; DispatchSource is thread-safe for cancel().
    private let sources: [any DispatchSourceSignal]

    init(onAbandon: @escaping @Sendable () -> Void = {}, onInterrupt: @escaping @Sendable () -> Void) {
        let queue = DispatchQueue(label: "govuk-fab.signals")
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            let seen = SignalCount()
            source.setEventHandler {
                if seen.increment() > 1 {
                    FileHandle.standardError.write(Data("govuk-fab: interrupted again; exiting now\n".utf8))
                    onAbandon()
                    exit(130)
                }
                FileHandle.standardError.write(Data("govuk-fab: interrupted: stopping remote commands; press Ctrl-C again to exit at once\n".utf8))
                onInterrupt()
            }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func stop() {
        for source in sources { source.cancel() }
    }
}

import Synchronization

private final class SignalCount: Sendable {
    private let count = Mutex(0)
    func increment() -> Int { count.withLock { $0 += 1; return $0 } }
}
