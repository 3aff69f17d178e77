package main

import (
	"fmt"
	"sync"
)

// logBuffer is the library's logger: it keeps Info and above until the caller takes them
// (raftshim_take_logs) and drops Debug. Fatal and Panic end the process as the library expects.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const maxLogBytes = 1 << 20 // kept between two takes, at most; older lines are dropped

func (l *logBuffer) add(level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > maxLogBytes {
		l.buf = l.buf[:0]
	}
	l.buf = append(l.buf, level...)
	l.buf = append(l.buf, ' ')
	l.buf = append(l.buf, msg...)
	l.buf = append(l.buf, '\n')
}

func (l *logBuffer) take() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf
	l.buf = nil
	return b
}

func (l *logBuffer) Debug(v ...interface{})                   {}
func (l *logBuffer) Debugf(format string, v ...interface{})   {}
func (l *logBuffer) Info(v ...interface{})                    { l.add("info", fmt.Sprint(v...)) }
func (l *logBuffer) Infof(format string, v ...interface{})    { l.add("info", fmt.Sprintf(format, v...)) }
func (l *logBuffer) Warning(v ...interface{})                 { l.add("warning", fmt.Sprint(v...)) }
func (l *logBuffer) Warningf(format string, v ...interface{}) { l.add("warning", fmt.Sprintf(format, v...)) }
func (l *logBuffer) Error(v ...interface{})                   { l.add("error", fmt.Sprint(v...)) }
func (l *logBuffer) Errorf(format string, v ...interface{})   { l.add("error", fmt.Sprintf(format, v...)) }
func (l *logBuffer) Fatal(v ...interface{})                   { panic(fmt.Sprint(v...)) }
func (l *logBuffer) Fatalf(format string, v ...interface{})   { panic(fmt.Sprintf(format, v...)) }
func (l *logBuffer) Panic(v ...interface{})                   { panic(fmt.Sprint(v...)) }
func (l *logBuffer) Panicf(format string, v ...interface{})   { panic(fmt.Sprintf(format, v...)) }
