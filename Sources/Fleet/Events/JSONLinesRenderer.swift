import Foundation

/// One JSON object per line per event, with an `"event"` field and sorted keys; see `docs/json-events.md`.
///
/// Output is line-buffered like the text renderer: one `output` object per complete line.
public struct JSONLinesRenderer: FleetEventRenderer {
    private var lines: OutputLineBuffer

    /// Creates a renderer.
    public init(maximumLineBytes: Int = 64 * 1024) {
        lines = OutputLineBuffer(maximumLineBytes: maximumLineBytes)
    }

    public mutating func render(_ event: FleetEvent) -> String {
        var objects: [[String: JSONValue]] = []
        switch event {
        case .runStarted(let environment, let hosts, let tasks, let time):
            objects.append(["event": "run_started", "time": .time(time), "environment": .string(environment),
                            "hosts": .strings(hosts), "tasks": .strings(tasks)])
        case .taskStarted(let host, let task, let command, let time):
            var object: [String: JSONValue] = ["event": "task_started", "time": .time(time),
                                               "host": .string(host), "task": .string(task)]
            if let command { object["command"] = .string(command) }
            objects.append(object)
        case .output(let host, let stream, let bytes, let time):
            for line in lines.append(bytes, host: host, stream: stream) {
                objects.append(Self.output(host: host, stream: stream, line: line, time: time))
            }
        case .hostFinished(let result):
            for (stream, line) in lines.flush(host: result.host) {
                objects.append(Self.output(host: result.host, stream: stream, line: line, time: result.time))
            }
            var object = Self.result(result)
            object["event"] = "host_finished"
            object["time"] = .time(result.time)
            objects.append(object)
        case .notice(let host, let message, let time):
            var object: [String: JSONValue] = ["event": "notice", "time": .time(time), "message": .string(message)]
            if let host { object["host"] = .string(host) }
            objects.append(object)
        case .summary(let summary):
            for pending in lines.flushAll() {
                objects.append(Self.output(host: pending.host, stream: pending.stream, line: pending.line,
                                           time: summary.time))
            }
            let code = summary.exitCode
            objects.append([
                "event": "summary", "time": .time(summary.time), "environment": .string(summary.environment),
                "hosts": .strings(summary.hosts), "tasks": .strings(summary.tasks),
                "results": .array(summary.results.map { .object(Self.result($0)) }),
                "failed_hosts": .strings(summary.failedHosts), "interrupted": .bool(summary.interrupted),
                "duration_s": .seconds(summary.duration), "exit_code": .int(Int(code.rawValue)),
                "exit_name": .string(code.name),
            ])
        }
        return objects.map { JSONValue.object($0).encoded + "\n" }.joined()
    }

    static func output(host: String, stream: RemoteStream, line: String, time: Date) -> [String: JSONValue] {
        ["event": "output", "time": .time(time), "host": .string(host), "stream": .string(stream.rawValue),
         "line": .string(line)]
    }

    /// The fields describing one result (shared by `host_finished` and `summary.results`).
    static func result(_ result: HostTaskResult) -> [String: JSONValue] {
        var object: [String: JSONValue] = [
            "host": .string(result.host), "task": .string(result.task), "outcome": .string(result.outcome.kind),
            "duration_s": .seconds(result.duration),
        ]
        switch result.outcome {
        case .exited(let status): object["exit_status"] = .int(Int(status))
        case .signalled(let signal): object["signal"] = .string(signal)
        case .timedOut(let after): object["timeout_s"] = .seconds(after)
        case .connectionFailed(let message): object["message"] = .string(message)
        case .skipped(let reason): object["message"] = .string(reason)
        }
        if let stderr = result.lastStderrLine { object["last_stderr"] = .string(stderr) }
        return object
    }
}

/// A JSON value written with sorted keys and no insignificant whitespace.
enum JSONValue: ExpressibleByStringLiteral {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])

    init(stringLiteral value: String) { self = .string(value) }

    static func strings(_ values: [String]) -> JSONValue { .array(values.map(JSONValue.string)) }

    /// Seconds with millisecond precision.
    static func seconds(_ duration: Duration) -> JSONValue {
        .double((DurationText.seconds(duration) * 1000).rounded() / 1000)
    }

    /// ISO 8601 in UTC with milliseconds, e.g. `2026-11-25T23:30:00.000Z`.
    static func time(_ date: Date) -> JSONValue {
        .string(AuditTimestamp.format(date))
    }

    var encoded: String {
        switch self {
        case .string(let text): return Self.quote(text)
        case .int(let value): return String(value)
        case .double(let value): return value.isFinite ? String(value) : "null"
        case .bool(let value): return value ? "true" : "false"
        case .array(let values): return "[" + values.map(\.encoded).joined(separator: ",") + "]"
        case .object(let fields):
            return "{" + fields.keys.sorted().map { Self.quote($0) + ":" + fields[$0]!.encoded }
                .joined(separator: ",") + "}"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20 || c.value == 0x7F || (0x2028...0x2029).contains(c.value):
                out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
