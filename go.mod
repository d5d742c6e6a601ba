module github.com/stoa-rtc/stoa

go 1.26
