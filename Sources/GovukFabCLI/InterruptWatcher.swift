import Dispatch
import Foundation
import Synchronization

/// How a run hears Ctrl-C. The binary watches SIGINT and SIGTERM (``signals(report:)``), which
/// are process-wide, so in-process tests pass their own source instead and call its
/// `onInterrupt` themselves.
struct InterruptSource: Sendable {
    /// Starts watching: `onInterrupt` on the first interrupt, `onAbandon` before exiting on a
    /// second; returns the function that stops watching.
    var watch:
        @Sendable (_ onAbandon: @escaping @Sendable () -> Void, _ onInterrupt: @escaping @Sendable () -> Void)
            -> @Sendable () -> Void

    /// The process's signals; `report` writes the one-line notices (stderr).
    static func signals(report: @escaping @Sendable (String) -> Void) -> InterruptSource {
        InterruptSource { onAbandon, onInterrupt in
            let watcher = InterruptWatcher(report: report, onAbandon: onAbandon, onInterrupt: onInterrupt)
            return { watcher.stop() }
        }
    }

    /// Never interrupted.
    static let none = InterruptSource { _, _ in {} }
}

/// Ctrl-C handling: the first SIGINT (or SIGTERM) stops scheduling and closes
/// remote commands through task cancellation, so the run still reports what
/// finished; a second one exits at once with 130, after `onAbandon` (the audit line).
final class InterruptWatcher: @unchecked Sendable {
    // Written once in init; DispatchSource is thread-safe for cancel().
    private let sources: [any DispatchSourceSignal]

    init(
        report: @escaping @Sendable (String) -> Void, onAbandon: @escaping @Sendable () -> Void = {},
        onInterrupt: @escaping @Sendable () -> Void
    ) {
        let queue = DispatchQueue(label: "govuk-fab.signals")
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            let seen = SignalCount()
            source.setEventHandler {
                if seen.increment() > 1 {
                    report("interrupted again; exiting now")
                    onAbandon()
                    exit(130)
                }
                report("interrupted: stopping remote commands; press Ctrl-C again to exit at once")
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

private final class SignalCount: Sendable {
    private let count = Mutex(0)
    func increment() -> Int {
        count.withLock {
            $0 += 1
            return $0
        }
    }
}
