package com.amazonaws.services.lambda.runtime.logging;

/** Levels a log line may carry. */
public enum LogLevel {
    UNDEFINED,
    TRACE,
    DEBUG,
    INFO,
    WARN,
    ERROR,
    FATAL;

    public static LogLevel fromString(String name) {
        try {
            return LogLevel.valueOf(name.toUpperCase());
        } catch (Exception e) {
            return UNDEFINED;
        }
    }
}
