import Foundation

/// One JSON object per line per event, through ``JSONLines`` (the one encoder); see `docs/json-events.md`.
///
/// Output is line-buffered like the text renderer: one `output` object per complete line.
public struct JSONLinesRenderer: FleetEventRenderer {
    private var lines: OutputLineBuffer
    /// The inventory file of the run, added to `run_started`.
    public var inventory: InventoryOrigin?

    /// Creates a renderer.
    public init(maximumLineBytes: Int = 64 * 1024, inventory: InventoryOrigin? = nil) {
        lines = OutputLineBuffer(maximumLineBytes: maximumLineBytes)
        self.inventory = inventory
    }

    public mutating func render(_ event: FleetEvent) -> String {
        var out = ""
        switch event {
        case .runStarted(let environment, let hosts, let tasks, let time):
            out += JSONLines.line(
                RunStartedEvent(environment: environment, hosts: hosts, tasks: tasks, inventory: inventory), time: time)
        case .taskStarted(let host, let task, let command, let time):
            out += JSONLines.line(TaskStartedEvent(host: host, task: task, command: command), time: time)
        case .output(let host, let stream, let bytes, let time):
            for line in lines.append(bytes, host: host, stream: stream) {
                out += Self.output(host: host, stream: stream, line: line, time: time)
            }
        case .hostFinished(let result):
            for (stream, line) in lines.flush(host: result.host) {
                out += Self.output(host: result.host, stream: stream, line: line, time: result.time)
            }
            out += JSONLines.line(HostFinishedEvent(result: JSONResult(result)), time: result.time)
        case .notice(let host, let message, let time):
            out += JSONLines.line(NoticeEvent(message: message, host: host), time: time)
        case .summary(let summary):
            for pending in lines.flushAll() {
                out += Self.output(host: pending.host, stream: pending.stream, line: pending.line, time: summary.time)
            }
            out += JSONLines.line(SummaryEvent(summary), time: summary.time)
        }
        return out
    }

    static func output(host: String, stream: RemoteStream, line: String, time: Date) -> String {
        JSONLines.line(OutputEvent(host: host, stream: stream.rawValue, line: line), time: time)
    }
}
