package sluice.it;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.StringJoiner;
import java.util.function.Supplier;

/** Assertions and deadlines for the client programs: a mismatch exits non-zero with a message. */
final class Checks {
    /** Generous: CI is a busy two-core machine running brokers and JVMs at once. */
    static final Duration DEADLINE = Duration.ofSeconds(60);

    private Checks() {}

    static void check(boolean condition, String message) {
        if (!condition) {
            fail(message);
        }
    }

    static void checkEqual(Object expected, Object actual, String what) {
        if (!java.util.Objects.equals(expected, actual)) {
            fail(what + ": expected " + expected + ", got " + actual);
        }
    }

    static void fail(String message) {
        System.err.println("FAIL: " + message);
        System.err.flush();
        System.exit(1);
    }

    /** Polls {@code probe} until it returns true; fails the program at the deadline. */
    static void waitFor(String what, Supplier<Boolean> probe) throws InterruptedException {
        Instant deadline = Instant.now().plus(DEADLINE);
        while (!probe.get()) {
            check(Instant.now().isBefore(deadline), "timed out waiting for " + what);
            Thread.sleep(100);
        }
    }

    /** A minimal JSON encoder for the summary line (strings, numbers, booleans, lists, maps). */
    static String json(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof String text) {
            StringBuilder out = new StringBuilder("\"");
            for (char c : text.toCharArray()) {
                if (c == '"' || c == '\\') {
                    out.append('\\').append(c);
                } else if (c < 0x20) {
                    out.append(String.format("\\u%04x", (int) c));
                } else {
                    out.append(c);
                }
            }
            return out.append('"').toString();
        }
        if (value instanceof Number || value instanceof Boolean) {
            return value.toString();
        }
        if (value instanceof List<?> list) {
            StringJoiner out = new StringJoiner(",", "[", "]");
            list.forEach(item -> out.add(json(item)));
            return out.toString();
        }
        if (value instanceof Map<?, ?> map) {
            StringJoiner out = new StringJoiner(",", "{", "}");
            map.forEach((key, item) -> out.add(json(key.toString()) + ":" + json(item)));
            return out.toString();
        }
        throw new IllegalArgumentException("no JSON for " + value.getClass());
    }
}
